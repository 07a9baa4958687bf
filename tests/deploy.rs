//! The Kubernetes example in deploy/: valid YAML of the right kinds, and the connperf command
//! lines in it are ones connperf accepts.

use connperf::cli::{parse_args, parse_start_at, Command};
use yaml_rust2::{Yaml, YamlLoader};

fn load(name: &str) -> Vec<Yaml> {
    let path = format!("{}/deploy/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn kinds(docs: &[Yaml]) -> Vec<&str> {
    docs.iter()
        .map(|d| d["kind"].as_str().expect("every document has a kind"))
        .collect()
}

/// The pod template's Prometheus annotations point at the port and path that the container's
/// `--metrics-addr` serves, and the container declares that port.
fn assert_scraped(doc: &Yaml, argv: &[String]) {
    let ann = &doc["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(ann["prometheus.io/scrape"].as_str(), Some("true"));
    assert_eq!(ann["prometheus.io/path"].as_str(), Some("/metrics"));
    let port = ann["prometheus.io/port"]
        .as_str()
        .expect("prometheus.io/port is a string");
    let i = argv
        .iter()
        .position(|a| a == "--metrics-addr")
        .expect("--metrics-addr in the args");
    let addr: std::net::SocketAddr = argv[i + 1].parse().expect("--metrics-addr HOST:PORT");
    assert_eq!(
        addr.port().to_string(),
        port,
        "annotation and --metrics-addr agree"
    );
    let declared = container(doc)["ports"]
        .as_vec()
        .expect("ports")
        .iter()
        .any(|p| {
            p["name"].as_str() == Some("metrics")
                && p["containerPort"].as_i64() == Some(i64::from(addr.port()))
        });
    assert!(declared, "the metrics port is a named container port");
}

fn container(doc: &Yaml) -> &Yaml {
    &doc["spec"]["template"]["spec"]["containers"][0]
}

fn args(c: &Yaml) -> Vec<String> {
    c["args"]
        .as_vec()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string arg").to_string())
        .collect()
}

#[test]
fn server_manifest_is_a_deployment_and_a_service() {
    let docs = load("connperf-server.yaml");
    assert_eq!(kinds(&docs), ["Deployment", "Service"]);
    let argv = args(container(&docs[0]));
    assert_scraped(&docs[0], &argv);
    let parsed = parse_args(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e:?}"));
    match parsed.cmd {
        Some(Command::Serve(s)) => {
            s.into_config().expect("serve flags are valid");
        }
        other => panic!("not serve: {other:?}"),
    }
    assert_eq!(docs[1]["spec"]["ports"][0]["port"].as_i64(), Some(9100));
}

#[test]
fn clients_are_an_indexed_job_that_starts_together_and_logs_to_a_volume() {
    let docs = load("connperf-clients.yaml");
    assert_eq!(kinds(&docs), ["PersistentVolumeClaim", "Job"]);
    let job = &docs[1];
    assert_eq!(job["apiVersion"].as_str(), Some("batch/v1"));
    assert_eq!(job["spec"]["completionMode"].as_str(), Some("Indexed"));
    assert_eq!(
        job["spec"]["completions"], job["spec"]["parallelism"],
        "all clients run at once"
    );
    let c = container(job);
    // What envsubst and Kubernetes fill in.
    let argv: Vec<String> = args(c)
        .into_iter()
        .map(|a| {
            a.replace("${START_AT}", "2099-01-01T00:00:00Z")
                .replace("$(JOB_COMPLETION_INDEX)", "0")
        })
        .collect();
    assert!(argv.contains(&"--start-at".to_string()) && argv.contains(&"--hdr-log".to_string()));
    assert_scraped(job, &argv);
    let at = &argv[argv.iter().position(|a| a == "--start-at").unwrap() + 1];
    parse_start_at(at).expect("start time parses");
    let log = &argv[argv.iter().position(|a| a == "--hdr-log").unwrap() + 1];
    let mount = c["volumeMounts"][0]["mountPath"].as_str().unwrap();
    assert!(
        log.starts_with(mount),
        "the log {log} is written to the volume at {mount}"
    );
    match parse_args(&argv)
        .unwrap_or_else(|e| panic!("{argv:?}: {e:?}"))
        .cmd
    {
        Some(Command::Connect(cfg)) => {
            assert_eq!(cfg.addrs, ["connperf-server:9100"]);
            assert_eq!(cfg.label, ["host=0"]);
            assert!(
                cfg.metrics_linger.is_some(),
                "the final totals stay scrapeable"
            );
            // The labels become metric labels (the target does not resolve here, so the whole
            // config is not built).
            let labels: Vec<(String, String)> = cfg
                .label
                .iter()
                .map(|l| {
                    l.split_once('=')
                        .map(|(k, v)| (k.into(), v.into()))
                        .unwrap()
                })
                .collect();
            connperf::metrics::check_label_names(&labels).expect("labels suit Prometheus");
        }
        other => panic!("not connect: {other:?}"),
    }
    let claim = job["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
        .as_str();
    assert_eq!(claim, docs[0]["metadata"]["name"].as_str());
}

#[test]
fn merge_job_reads_the_clients_volume() {
    let docs = load("connperf-merge.yaml");
    assert_eq!(kinds(&docs), ["Job"]);
    let c = container(&docs[0]);
    let cmd: Vec<&str> = c["command"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert!(
        cmd.last().unwrap().starts_with("connperf merge /logs/"),
        "{cmd:?}"
    );
    let clients = load("connperf-clients.yaml");
    let claim = |d: &Yaml| {
        d["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
            .as_str()
            .map(str::to_string)
    };
    assert_eq!(claim(&docs[0]), claim(&clients[1]));
}
