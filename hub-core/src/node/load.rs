//! Load reports for load-aware distribution: every node tells the leader
//! (the lowest node id in the ring) what share of the children it runs;
//! the leader answers everyone with its scoreboard.

use super::{LocalState, Node};
use crate::protocol::Message;

impl Node {
    pub(super) fn report_load(&mut self) {
        if self.partitioned || self.leaving.is_some() {
            return;
        }
        let running = self
            .children
            .local
            .values()
            .filter(|l| matches!(l.state, LocalState::Running(_)))
            .count() as u64;
        let total = (self.registry.len() as u64).max(1);
        let permille = (running * 1000 / total).min(1000) as u32;
        let Some(leader) = self.ring.nodes().first().cloned() else {
            return;
        };
        if leader == self.me {
            let me = self.me.clone();
            let Some(l) = self.strategies.distribution.load_reports() else {
                return;
            };
            l.record_load(&me, permille);
            let board = l.scoreboard();
            l.set_scoreboard(board.clone());
            for to in self.membership.ring_peers() {
                self.send(to, Message::Scoreboard(board.clone()));
            }
        } else {
            self.send(leader, Message::Load(permille));
        }
    }
}
