//! `status` and `ctl`: talk to a running node as a control client.

use std::collections::BTreeMap;
use std::time::Duration;

use hub_core::{ChildId, ChildSpec};
use hub_net::control::{CtlReply, CtlRequest, Status};
use hub_net::Client;

use crate::args::{CtlOp, Target};
use crate::stdout::outln;
use crate::{AnyError, Codec};

/// Runs `status`.
pub(crate) async fn status(target: &Target) -> Result<(), AnyError> {
    let mut c = target.connect().await?;
    match c
        .request(CtlRequest::Status, Duration::from_secs(5))
        .await?
    {
        CtlReply::Status(s) if target.json => outln!("{}", serde_json::to_string_pretty(&s)?),
        CtlReply::Status(s) => print_status(&s),
        other => return Err(reply_error(other)),
    }
    Ok(())
}

fn print_status(s: &Status) {
    outln!("hub {}  node {}", s.hub_id, s.node_id);
    outln!(
        "ring       {}",
        s.ring
            .iter()
            .map(|n| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    outln!(
        "children   {} in the hub, {} here",
        s.children,
        s.local_children
    );
    if s.waiting > 0 {
        outln!("waiting    {} (known here, running nowhere yet)", s.waiting);
    }
    outln!("locked     {}   partitioned {}", s.locked, s.partitioned);
    match &s.unsettled {
        None => outln!("settled    yes"),
        Some(why) => outln!("settled    no: {why}"),
    }
    for m in &s.members {
        outln!("  {:<12} {:<22} {}", m.id, m.addr, m.status);
    }
}

/// The kinds this binary knows: how to speak their JSON, and which one
/// `ctl start` means without `--kind`.
pub(crate) struct Kinds<'a> {
    pub(crate) codecs: &'a BTreeMap<String, Codec>,
    pub(crate) default: Option<&'a str>,
}

/// Runs one `ctl` subcommand against a node.
pub(crate) async fn run(
    c: &mut Client,
    op: CtlOp,
    json: bool,
    kinds: Kinds<'_>,
) -> Result<(), AnyError> {
    let codecs = kinds.codecs;
    let t = Duration::from_secs(30);
    // Children a start or stop could not handle: the JSON is printed
    // anyway, and the command then fails naming them.
    let mut failures: Vec<String> = Vec::new();
    let mut asked = 0;
    let out: serde_json::Value = match op {
        CtlOp::Start {
            ids,
            kind,
            args,
            require,
            prefer,
            nodes,
        } => {
            let kind = kind
                .or(kinds.default.map(str::to_string))
                .ok_or("this binary registers no kind: name one with --kind")?;
            let args = match args {
                None => bytes::Bytes::new(),
                Some(json) => {
                    let codec = codecs.get(&kind).ok_or_else(|| {
                        format!("--args needs a kind this binary registers, not {kind:?}")
                    })?;
                    (codec.encode_args)(&json)
                        .map_err(|e| format!("bad {kind:?} arguments {json:?}: {e}"))?
                }
            };
            let specs = ids
                .iter()
                .map(|id| {
                    let mut spec =
                        ChildSpec::new(id.as_str(), kind.as_str()).with_args(args.clone());
                    for (k, v) in &require {
                        spec = spec.with_requirement(k, v);
                    }
                    for (k, v) in &prefer {
                        spec = spec.with_preference(k, v);
                    }
                    if !nodes.is_empty() {
                        spec = spec.with_nodes(nodes.iter().map(String::as_str));
                    }
                    spec
                })
                .collect::<Vec<ChildSpec>>();
            asked = ids.len();
            // The node refuses a whole batch over one invalid spec; the
            // valid ones start, and the others are reported like any
            // child that did not start.
            let (specs, invalid): (Vec<ChildSpec>, Vec<ChildSpec>) =
                specs.into_iter().partition(|s| s.validate().is_ok());
            let invalid: Vec<(ChildId, String)> = invalid
                .into_iter()
                .map(|s| {
                    let why = s
                        .validate()
                        .err()
                        .map(|e| e.to_string())
                        .unwrap_or_default();
                    (s.id, format!("invalid spec: {why}"))
                })
                .collect();
            let reply = if specs.is_empty() {
                CtlReply::Started {
                    started: BTreeMap::new(),
                    failed: Vec::new(),
                }
            } else {
                c.request(CtlRequest::Start { specs }, t).await?
            };
            match reply {
                CtlReply::Started {
                    started,
                    mut failed,
                } => {
                    failed.extend(invalid);
                    failures = failed.iter().map(|(id, e)| format!("{id}: {e}")).collect();
                    serde_json::json!({
                    "started": started.iter().map(|(id, at)| (id.to_string(), at.iter().map(|(n, _)| n.to_string()).collect::<Vec<_>>())).collect::<BTreeMap<_, _>>(),
                    "failed": failed.iter().map(|(id, e)| (id.to_string(), e.clone())).collect::<BTreeMap<_, _>>(),
                    })
                }
                other => return Err(reply_error(other)),
            }
        }
        CtlOp::Stop { ids } => {
            asked = ids.len();
            let ids = ids.into_iter().map(ChildId::from).collect();
            match c.request(CtlRequest::Stop { ids }, t).await? {
                CtlReply::Stopped { stopped, failed } => {
                    failures = failed.iter().map(|(id, e)| format!("{id}: {e}")).collect();
                    serde_json::json!({
                    "stopped": stopped.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
                    "failed": failed.iter().map(|(id, e)| (id.to_string(), e.clone())).collect::<BTreeMap<_, _>>(),
                    })
                }
                other => return Err(reply_error(other)),
            }
        }
        CtlOp::Lookup { id } => match c
            .request(
                CtlRequest::Lookup {
                    id: id.as_str().into(),
                },
                t,
            )
            .await?
        {
            CtlReply::Lookup(at, waiting) => serde_json::json!({
                "id": id,
                "nodes": at.iter().map(|(n, _)| n.to_string()).collect::<Vec<_>>(),
                "waiting": waiting,
            }),
            other => return Err(reply_error(other)),
        },
        CtlOp::Which { waiting: true, .. } => match c.request(CtlRequest::Waiting, t).await? {
            CtlReply::Waiting(ids) => serde_json::json!({
                "waiting": ids.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
            }),
            other => return Err(reply_error(other)),
        },
        CtlOp::Which { local, .. } => {
            match c.request(CtlRequest::Which { global: !local }, t).await? {
                CtlReply::Which(m) => serde_json::to_value(
                    m.iter()
                        .map(|(n, ids)| {
                            (
                                n.to_string(),
                                ids.iter().map(|(i, _)| i.to_string()).collect::<Vec<_>>(),
                            )
                        })
                        .collect::<BTreeMap<_, _>>(),
                )?,
                other => return Err(reply_error(other)),
            }
        }
        CtlOp::Decommission { node } => {
            let req = CtlRequest::Decommission {
                node: node.as_str().into(),
            };
            // The drain may take up to the node's shutdown timeout.
            match c.request(req, Duration::from_secs(120)).await? {
                CtlReply::Decommissioned(n) => {
                    serde_json::json!({ "decommissioned": n.to_string() })
                }
                other => return Err(reply_error(other)),
            }
        }
        CtlOp::Call {
            id,
            message,
            kind,
            timeout,
        } => {
            let registered = match c
                .request(
                    CtlRequest::Kind {
                        id: id.as_str().into(),
                    },
                    t,
                )
                .await?
            {
                CtlReply::Kind(Some(k)) => k,
                CtlReply::Kind(None) => return Err(format!("no child {id:?} is registered").into()),
                other => return Err(reply_error(other)),
            };
            if let Some(k) = kind.filter(|k| *k != registered) {
                return Err(format!("{id} is of kind {registered:?}, not {k:?}").into());
            }
            let codec = codecs.get(&registered).ok_or_else(|| {
                format!(
                    "{id} is a {registered:?} child, a kind this binary does not register; \
                     run ctl from the binary its nodes run"
                )
            })?;
            let payload = (codec.encode)(&message)
                .map_err(|e| format!("bad {registered:?} message {message:?}: {e}"))?;
            let within = Duration::from_secs(timeout);
            let req = CtlRequest::Call {
                id: id.as_str().into(),
                payload,
                timeout_ms: within.as_millis() as u64,
            };
            match c.request(req, within + Duration::from_secs(5)).await? {
                CtlReply::Called(Ok(b)) => {
                    serde_json::json!({ "id": id, "reply": (codec.decode)(&b)? })
                }
                CtlReply::Called(Err(e)) => return Err(format!("call failed: {e}").into()),
                other => return Err(reply_error(other)),
            }
        }
    };
    if json {
        outln!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        outln!("{out}");
    }
    if !failures.is_empty() {
        let n = failures.len();
        let mut named = failures.into_iter().take(3).collect::<Vec<_>>().join("; ");
        if n > 3 {
            named.push_str(&format!("; and {} more", n - 3));
        }
        return Err(format!("{n} of {asked} children failed: {named}").into());
    }
    Ok(())
}

pub(crate) fn reply_error(r: CtlReply) -> AnyError {
    match r {
        CtlReply::Error(e) => e.into(),
        other => format!("unexpected reply {other:?}").into(),
    }
}
