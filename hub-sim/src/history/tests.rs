use super::*;
use proptest::prelude::*;

fn ok(key: &str, op: CounterOp, invoke: Micros, at: Micros, value: i64) -> Call {
    Call {
        key: key.into(),
        op,
        invoke,
        outcome: Outcome::Ok {
            value,
            at,
            by: "m".into(),
        },
    }
}

fn lost(key: &str, op: CounterOp, invoke: Micros) -> Call {
    Call {
        key: key.into(),
        op,
        invoke,
        outcome: Outcome::Unknown,
    }
}

use CounterOp::{Add, Get};

/// Golden table: each history and whether it is linearizable.
#[test]
fn linearizability_decisions() {
    let table: Vec<(&str, Vec<Call>, bool)> = vec![
        ("empty", vec![], true),
        (
            "sequential adds and a read",
            vec![
                ok("a", Add(1), 0, 10, 1),
                ok("a", Add(2), 20, 30, 3),
                ok("a", Get, 40, 50, 3),
            ],
            true,
        ),
        (
            "a read after an answered add sees it",
            vec![ok("a", Add(1), 0, 10, 1), ok("a", Get, 20, 30, 0)],
            false,
        ),
        (
            "overlapping adds may take effect in either order",
            vec![ok("a", Add(1), 0, 100, 2), ok("a", Add(1), 10, 50, 1)],
            true,
        ),
        (
            "a read overlapping an add may see it or not",
            vec![
                ok("a", Add(1), 0, 100, 1),
                ok("a", Get, 10, 20, 1),
                ok("a", Get, 30, 40, 1),
            ],
            true,
        ),
        (
            "reads cannot go back",
            vec![
                ok("a", Add(1), 0, 100, 1),
                ok("a", Get, 10, 20, 1),
                ok("a", Get, 30, 40, 0),
            ],
            false,
        ),
        (
            "an add applied twice",
            vec![ok("a", Add(1), 0, 10, 1), ok("a", Add(1), 20, 30, 3)],
            false,
        ),
        (
            "an unanswered add explains a jump",
            vec![lost("a", Add(1), 0), ok("a", Add(1), 10, 20, 2)],
            true,
        ),
        (
            "an unanswered add may never take effect",
            vec![
                lost("a", Add(1), 0),
                ok("a", Add(1), 10, 20, 1),
                ok("a", Get, 30, 40, 1),
            ],
            true,
        ),
        (
            "an unanswered add cannot act before it was sent",
            vec![ok("a", Add(1), 0, 10, 2), lost("a", Add(1), 50)],
            false,
        ),
        (
            "each unanswered add acts at most once",
            vec![lost("a", Add(1), 0), ok("a", Get, 10, 20, 2)],
            false,
        ),
        (
            "unanswered adds of different amounts",
            vec![
                lost("a", Add(5), 0),
                lost("a", Add(1), 0),
                ok("a", Get, 10, 20, 5),
            ],
            true,
        ),
        (
            "an unanswered read explains nothing",
            vec![lost("a", Get, 0), ok("a", Get, 10, 20, 1)],
            false,
        ),
        (
            "counters are judged apart",
            vec![
                ok("a", Add(1), 0, 10, 1),
                ok("b", Get, 20, 30, 0),
                ok("b", Add(1), 40, 50, 1),
            ],
            true,
        ),
        (
            "one bad counter fails the history",
            vec![ok("a", Add(1), 0, 10, 1), ok("b", Get, 20, 30, 7)],
            false,
        ),
    ];
    for (name, calls, want) in table {
        let got = check_linearizable(&calls, 0);
        assert_eq!(got.is_ok(), want, "{name}: {got:?}");
    }
}

#[test]
fn a_failure_names_the_counter_and_the_calls_that_do_not_fit() {
    let calls = vec![ok("c7", Add(1), 0, 10, 1), ok("c7", Get, 20, 30, 0)];
    let e = check_linearizable(&calls, 0).unwrap_err();
    assert!(e.starts_with("c7: not linearizable"), "{e}");
    assert!(e.contains("Get sent at 20"), "{e}");
}

#[test]
fn the_initial_value_counts() {
    let calls = vec![ok("a", Get, 0, 10, 5)];
    assert!(check_linearizable(&calls, 5).is_ok());
    assert!(check_linearizable(&calls, 0).is_err());
}

/// A history produced by a real counter: each call takes effect at one
/// moment inside its interval; some answers are lost (their effect kept
/// or not).
fn correct_history() -> impl Strategy<Value = Vec<Call>> {
    prop::collection::vec(
        (
            0u64..1_000,
            0u64..200,
            0u64..200,
            any::<bool>(),
            0u8..4,
            0u8..3,
        ),
        0..40,
    )
    .prop_map(|raw| {
        let mut ops: Vec<(Micros, Micros, Micros, CounterOp, u8, String)> = raw
            .into_iter()
            .map(|(invoke, to_point, to_done, add, fate, key)| {
                let op = if add { Add(1) } else { Get };
                let point = invoke + to_point;
                (invoke, point, point + to_done, op, fate, format!("k{key}"))
            })
            .collect();
        ops.sort_by_key(|o| o.1);
        let mut counts: BTreeMap<String, i64> = BTreeMap::new();
        let mut calls = Vec::new();
        for (invoke, _, done, op, fate, key) in ops {
            // fate 0: the answer is lost but the add took effect; fate 1:
            // lost and it never reached the counter.
            let v = counts.entry(key.clone()).or_default();
            if fate != 1 {
                if let Add(k) = op {
                    *v += k;
                }
            }
            calls.push(if fate <= 1 {
                lost(&key, op, invoke)
            } else {
                ok(&key, op, invoke, done, *v)
            });
        }
        calls
    })
}

proptest! {
    #[test]
    fn a_real_counter_is_linearizable(calls in correct_history()) {
        prop_assert!(check_linearizable(&calls, 0).is_ok());
    }

    /// Calls that never overlap leave one possible order: any answer
    /// changed is caught.
    #[test]
    fn a_wrong_answer_in_a_sequential_history_is_caught(
        ops in prop::collection::vec(any::<bool>(), 1..30),
        which in any::<prop::sample::Index>(),
        delta in prop::sample::select(vec![-2i64, -1, 1, 2]),
    ) {
        let mut n = 0;
        let mut calls: Vec<Call> = ops.iter().enumerate().map(|(i, add)| {
            let t = i as u64 * 10;
            if *add {
                n += 1;
                ok("a", Add(1), t, t + 5, n)
            } else {
                ok("a", Get, t, t + 5, n)
            }
        }).collect();
        let i = which.index(calls.len());
        if let Outcome::Ok { value, .. } = &mut calls[i].outcome {
            *value += delta;
        }
        prop_assert!(check_linearizable(&calls, 0).is_err());
    }
}

fn life(id: &str, machine: &str, start: Micros, end: Option<Micros>) -> Lifetime {
    Lifetime {
        id: id.into(),
        machine: machine.into(),
        start,
        end,
    }
}

#[test]
fn lives_that_overlap_are_reported() {
    let lives = vec![
        life("a", "n0", 0, Some(10)),
        life("a", "n1", 10, Some(20)),
        life("b", "n0", 0, Some(100)),
        life("b", "n1", 10, Some(20)),
        life("b", "n2", 30, None),
        life("c", "n0", 5, None),
        life("d", "n0", 0, None),
        life("d", "n1", 50, Some(60)),
    ];
    let seen = overlapping_lives(&lives);
    assert_eq!(seen.len(), 3, "{seen:#?}");
    assert!(seen[0].starts_with("b: started on n1 at 10"), "{seen:#?}");
    assert!(seen[1].starts_with("b: started on n2 at 30"), "{seen:#?}");
    assert!(seen[2].starts_with("d: started on n1 at 50"), "{seen:#?}");
}

#[test]
fn final_counts_hold_every_answered_add_and_no_more_than_tried() {
    let calls = vec![
        ok("a", Add(1), 0, 10, 1),
        lost("a", Add(1), 20),
        ok("a", Add(1), 30, 40, 2),
    ];
    let finals = |v: i64| BTreeMap::from([("a".to_string(), v)]);
    assert!(check_final_counts(&calls, &finals(2), 0, |_| false).is_ok());
    assert!(check_final_counts(&calls, &finals(3), 0, |_| false).is_ok());
    let e = check_final_counts(&calls, &finals(1), 0, |_| false).unwrap_err();
    assert!(e.contains("lost adds"), "{e}");
    let e = check_final_counts(&calls, &finals(4), 0, |_| false).unwrap_err();
    assert!(e.contains("exceeds"), "{e}");
    // The last answer falls in a loss window: 1 is then enough.
    assert!(check_final_counts(&calls, &finals(1), 0, |c| c.invoke == 30).is_ok());
    assert!(check_final_counts(&calls, &BTreeMap::new(), 0, |_| false).is_err());
}
