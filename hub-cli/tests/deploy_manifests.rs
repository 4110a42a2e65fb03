//! The Kubernetes manifest in `deploy/kubernetes/hub.yaml` is what the
//! README tells operators to apply: every document is a valid object of
//! its Kubernetes API type (k8s-openapi) with no unknown or misspelled
//! field, its probes point at
//! endpoints the `hub` binary really serves when started with the
//! manifest's own config file, the drain fits in the grace period, and
//! the pieces refer to each other correctly.

mod procs;

use std::process::{Command, Stdio};
use std::time::Duration;

use procs::*;
use serde::Deserialize;
use serde_json::Value;

const MANIFEST: &str = include_str!("../../deploy/kubernetes/hub.yaml");

fn documents() -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(MANIFEST)
        .map(|d| Value::deserialize(d).expect("a YAML document"))
        .collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in the manifest"))
}

/// `doc` read as its Kubernetes API type and written back: an error or a
/// difference means a wrong type or a field the API does not have.
fn as_api_object(doc: &Value) -> Result<(), String> {
    use k8s_openapi::api::{apps, core, policy};
    fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(
        doc: &Value,
    ) -> Result<Value, String> {
        let typed: T = serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?;
        serde_json::to_value(typed).map_err(|e| e.to_string())
    }
    let back = match doc["kind"].as_str() {
        Some("StatefulSet") => round_trip::<apps::v1::StatefulSet>(doc)?,
        Some("Service") => round_trip::<core::v1::Service>(doc)?,
        Some("ConfigMap") => round_trip::<core::v1::ConfigMap>(doc)?,
        Some("PodDisruptionBudget") => round_trip::<policy::v1::PodDisruptionBudget>(doc)?,
        other => return Err(format!("unexpected kind {other:?}")),
    };
    if back != *doc {
        return Err(format!(
            "fields the API type does not have were dropped:\n{doc}\nread back as\n{back}"
        ));
    }
    Ok(())
}

#[test]
fn every_manifest_document_is_a_valid_kubernetes_object() {
    let docs = documents();
    assert_eq!(docs.len(), 4, "Service, ConfigMap, StatefulSet, PDB");
    for doc in &docs {
        if let Err(e) = as_api_object(doc) {
            panic!("{}: {e}", doc["kind"]);
        }
    }
    // The check can fail: a misspelled field and a wrong type are caught.
    let mut typo = of_kind(&docs, "StatefulSet").clone();
    typo["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] =
        typo["spec"]["template"]["spec"]["containers"][0]["readinessProbe"].clone();
    assert!(as_api_object(&typo).is_err(), "a misspelled field");
    let mut wrong = of_kind(&docs, "PodDisruptionBudget").clone();
    wrong["spec"]["selector"] = Value::String("app=hub".into());
    assert!(as_api_object(&wrong).is_err(), "a wrong type");
}

fn http_status(addr: &str, path: &str) -> Option<u16> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    agent
        .get(&format!("http://{addr}{path}"))
        .call()
        .ok()
        .map(|r| r.status().as_u16())
}

#[test]
fn the_kubernetes_manifest_fits_the_binary_it_runs() {
    let docs = documents();
    let service = of_kind(&docs, "Service");
    assert_eq!(service["spec"]["clusterIP"], "None", "a headless Service");
    assert_eq!(service["spec"]["publishNotReadyAddresses"], true);
    let set = of_kind(&docs, "StatefulSet");
    assert_eq!(set["spec"]["serviceName"], service["metadata"]["name"]);
    let pod = &set["spec"]["template"]["spec"];
    let labels = &set["spec"]["template"]["metadata"]["labels"];
    assert_eq!(&set["spec"]["selector"]["matchLabels"], labels);
    let pdb = of_kind(&docs, "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert_eq!(&pdb["spec"]["selector"]["matchLabels"], labels);
    // A graceful leave may take the node's shutdown timeout (60 s) plus
    // the wait for a successor (5 s).
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(grace >= 65, "grace period {grace} s");

    let container = &pod["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args, ["node"]);
    let env = container["env"].as_array().unwrap();
    // The config file is named by HUB_CONFIG, which `hub status` and
    // `hub ctl` read too.
    let config_env = env.iter().find(|e| e["name"] == "HUB_CONFIG").unwrap();
    let config_path = std::path::Path::new(config_env["value"].as_str().unwrap());
    let node_id = env.iter().find(|e| e["name"] == "HUB_NODE_ID").unwrap();
    assert_eq!(
        node_id["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );

    // The config file comes from the ConfigMap mounted at its directory.
    let mount = |name: &str| {
        container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("no mount {name}"))["mountPath"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let volume = |name: &str| {
        pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no volume {name}"))
            .clone()
    };
    assert_eq!(
        config_path.parent().unwrap().to_str().unwrap(),
        mount("config")
    );
    let map = of_kind(&docs, "ConfigMap");
    assert_eq!(
        volume("config")["configMap"]["name"],
        map["metadata"]["name"]
    );
    let key = config_path.file_name().unwrap().to_str().unwrap();
    let config = map["data"][key]
        .as_str()
        .expect("the config file in the ConfigMap");
    assert_eq!(volume("cookie")["secret"]["secretName"], "hub-cookie");
    assert!(config.contains(&format!("cookie_file = \"{}/cookie\"", mount("cookie"))));

    // The binary runs with that very config (addresses moved to loopback)
    // and serves the probes' paths on the probes' port.
    let ports = container["ports"].as_array().unwrap();
    let named = |p: &Value| {
        ports
            .iter()
            .find(|q| q["name"] == p["port"])
            .map(|q| q["containerPort"].as_u64().unwrap())
            .unwrap()
    };
    let live = &container["livenessProbe"]["httpGet"];
    let ready = &container["readinessProbe"]["httpGet"];
    assert_eq!(named(live), named(ready));
    assert!(config.contains(&format!("management = \"0.0.0.0:{}\"", named(live))));

    let dir = std::env::temp_dir();
    let file = dir.join(format!("hub-cli-k8s-{}.toml", std::process::id()));
    std::fs::write(&file, config).unwrap();
    let cookie = cookie_file("k8s");
    let (listen, management) = (free_addr(), free_addr());
    let node = Command::new(HUB)
        .arg("node")
        .env("HUB_CONFIG", &file)
        .args([
            "--listen",
            &listen,
            "--management",
            &management,
            "--cookie-file",
        ])
        .arg(&cookie)
        .env("HUB_NODE_ID", "hub-0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _node = Procs(vec![node]);
    let path = |probe: &Value| probe["path"].as_str().unwrap().to_string();
    let alive = eventually(Duration::from_secs(10), || {
        http_status(&management, &path(live)) == Some(200)
    });
    assert!(alive, "the liveness probe's path answers 200");
    // Alone, with min_members = 2 and a majority of 3, it is not ready:
    // the readiness path exists and says so.
    assert_eq!(http_status(&management, &path(ready)), Some(503));
}
