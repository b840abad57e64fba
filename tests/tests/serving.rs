//! Online serving on real daemons: a breast hetero LR model trained by bank-a (guest) and
//! insurer-b (host), deployed at both, answering over HTTP/JSON and gRPC exactly as the batch
//! predict job does; errors, quotas, a hostile partner, feedback, restarts, and gray rollout.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use consort_actors::serving::rpc::{SERVING_TOPIC, ServeAnswer, ServeRpc, WireState};
use consort_components::evaluation;
use consort_protocol::peer::PeerResponse;
use consort_tests::hostile::Hostile;
use consort_tests::serving::*;
use consort_tests::*;
use serde_json::{Value, json};
use std::net::SocketAddr;

const T: Duration = Duration::from_secs(120);

/// `GET /metrics` at `board`, checked by `promtool check metrics` (installed by `.ci/run`).
fn scrape(board: SocketAddr) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (status, body) = rt.block_on(async {
        let mut c = HttpConn::connect(board, None).await.unwrap();
        c.get("/metrics").await.unwrap()
    });
    assert_eq!(status, 200);
    let text = String::from_utf8(body.to_vec()).unwrap();
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; .ci/run installs it)");
    std::io::Write::write_all(&mut promtool.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// The value of the sample `series` (name and labels, as written) in a scrape.
fn sample(text: &str, series: &str) -> u64 {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{series} not in:\n{text}"));
    line.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{series}: {line}: {e}"))
}

/// A child process killed when the test ends, however it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn deploy(fed: &Federation, rev: &str, service: &str, extra: &[&str]) -> Value {
    let mut args = vec!["--json", "serve", "deploy", rev, "--service", service];
    args.extend_from_slice(extra);
    let out = fed.parties[0].cli(&args);
    assert_eq!(out.code, Some(0), "{out:?}");
    out.json()
}

fn infer_body(id: &str, features: &serde_json::Map<String, Value>) -> Value {
    json!({"id": id, "features": features})
}

#[test]
fn breast_serves_online_as_the_predict_job_scores_and_survives_restarts() {
    let host_sources = "\n[serving.sources.breast]\ntable = \"breast_host\"\n\
         [serving.sources.breast-go]\ntable = \"breast_host\"\n\
         [serving.sources.breast-q]\ntable = \"breast_host\"\nquota_per_minute = 100\n\
         [serving.sources.breast-pp]\ntable = \"breast_host\"\n";
    // The host's features from an adapter (a command speaking JSON lines) that exits after
    // every third answer: the daemon starts it again.
    // And from one at an HTTP endpoint.
    let adapter_port = free_port();
    let host_sources = format!(
        "{host_sources}[serving.sources.breast-ad]\ncommand = [\"{}\", \"{}\", \"--exit-after\", \"3\"]\n\
         [serving.sources.breast-http]\nurl = \"http://127.0.0.1:{adapter_port}/features\"\n",
        env!("CARGO_BIN_EXE_csv_features"),
        example_data("breast_hetero_host.csv")
    );
    let mut endpoint = KillOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_csv_features"))
            .args([
                &example_data("breast_hetero_host.csv"),
                "--http",
                &format!("127.0.0.1:{adapter_port}"),
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(endpoint.0.stdout.as_mut().unwrap()),
        &mut ready,
    )
    .unwrap();
    assert_eq!(ready.trim(), "listening");
    // Mallory: a configured partner of the host, but not a party of the model.
    let s0 = setup(
        "\n[serving.sources.breast]\ntable = \"breast_guest\"\n",
        &host_sources,
    );
    let mallory = Hostile::start("mallory", &[(&s0.fed.parties[1], s0.fed.addr(1))]);
    s0.fed.append_config(1, &mallory.partner_toml());
    let Setup {
        fed,
        http,
        grpc,
        board,
    } = s0;
    let mut d = start(&fed);
    upload_breast_hetero(&fed);
    let (model, version) = train(&fed);
    let offline = predict_scores(&fed, &model, &version);
    assert_eq!(offline.len(), 569);

    // A host cannot deploy; the guest deploys at both parties.
    let refused = fed.parties[1].cli(&[
        "serve",
        "deploy",
        &format!("{model}@{version}"),
        "--service",
        "breast",
    ]);
    assert_eq!(refused.code, Some(1), "{refused:?}");
    assert!(
        refused.stderr.contains("deploy it from its guest"),
        "{}",
        refused.stderr
    );
    let shown = deploy(
        &fed,
        &format!("{model}@{version}"),
        "breast",
        &["--deadline-ms", "1500"],
    );
    assert_eq!(shown["service"]["versions"][0]["version"], version.as_str());
    let at_host = fed.parties[1]
        .cli(&["--json", "serve", "show", "breast"])
        .json();
    assert_eq!(at_host["service"]["role"], "host", "{at_host}");
    assert_eq!(at_host["service"]["guest"], "bank-a");

    // HTTP: every id scores as the predict job scored it.
    let rows = guest_rows();
    let mut client = Http::new(http, None);
    let mut worst = 0.0f64;
    for (id, features, _) in &rows {
        let (status, body) = client.post("/v1/services/breast/infer", &infer_body(id, features));
        assert_eq!(status, 200, "{body}");
        let got = body["score"].as_f64().unwrap();
        worst = worst.max((got - offline[id]).abs());
        assert_eq!(body["version"], version.as_str());
        let parties: Vec<&str> = body["timings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["party"].as_str().unwrap())
            .collect();
        assert_eq!(parties, ["bank-a", "insurer-b"]);
    }
    eprintln!("largest |online − predict job| over 569 ids (HTTP): {worst:e}");
    assert!(worst <= 1e-9, "{worst}");

    // gRPC, with the generated client: one by one and as one batch.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let request = |id: &str, f: &serde_json::Map<String, Value>| pb::InferRequest {
        service: "breast".into(),
        id: id.to_owned(),
        request_id: String::new(),
        features: f
            .iter()
            .map(|(k, v)| (k.clone(), v.as_f64().unwrap()))
            .collect(),
    };
    rt.block_on(async {
        let mut c = pb::inference_client::InferenceClient::connect(format!("http://{grpc}"))
            .await
            .unwrap();
        for (id, f, _) in rows.iter().take(50) {
            let r = c.infer(request(id, f)).await.unwrap().into_inner();
            assert!((r.score - offline[id]).abs() <= 1e-9, "{id}");
            assert_eq!(r.version, version);
        }
        let batch = pb::BatchInferRequest {
            service: "breast".into(),
            requests: rows.iter().map(|(id, f, _)| request(id, f)).collect(),
        };
        let items = c.batch_infer(batch).await.unwrap().into_inner().items;
        assert_eq!(items.len(), 569);
        for ((id, _, _), item) in rows.iter().zip(items) {
            match item.outcome {
                Some(pb::batch_item::Outcome::Reply(r)) => {
                    assert!((r.score - offline[id]).abs() <= 1e-9, "{id}")
                }
                other => panic!("{id}: {other:?}"),
            }
        }
        let missing = c
            .infer(pb::InferRequest {
                service: "nope".into(),
                ..request("1", &rows[0].1)
            })
            .await
            .unwrap_err();
        assert_eq!(missing.code(), tonic::Code::NotFound, "{missing:?}");
    });

    // Bad input: named, with the right status, and the daemon carries on.
    let (id0, f0, _) = &rows[0];
    let (s, b) = client.post("/v1/services/nope/infer", &infer_body(id0, f0));
    assert_eq!(s, 404, "{b}");
    let mut no_x3 = f0.clone();
    no_x3.remove("x3");
    let (s, b) = client.post("/v1/services/breast/infer", &infer_body(id0, &no_x3));
    assert_eq!(s, 400, "{b}");
    assert!(b["error"].as_str().unwrap().contains("'x3'"), "{b}");
    let mut typo = f0.clone();
    typo.insert("x3".into(), json!("0.5"));
    let (s, b) = client.post("/v1/services/breast/infer", &infer_body(id0, &typo));
    assert_eq!(s, 400, "{b}");
    assert!(b["error"].as_str().unwrap().contains("'x3'"), "{b}");
    let (s, b) = client.post("/v1/services/breast/infer", &infer_body("no-such-id", f0));
    assert_eq!(s, 400, "{b}");
    assert!(b["error"].as_str().unwrap().contains("insurer-b"), "{b}");
    let huge = format!("{{\"id\": \"1\", \"pad\": \"{}\"}}", "x".repeat(2 << 20));
    let (s, _) = Http::new(http, None)
        .post_raw("/v1/services/breast/infer", huge.into_bytes())
        .unwrap();
    assert_eq!(s, 413);
    let (s, b) = client
        .post_raw("/v1/services/breast/infer", b"{not json".to_vec())
        .unwrap();
    assert_eq!(s, 400, "{b}");

    // Feedback: the true labels; the online AUC is the offline AUC of the same scores.
    let labels: Vec<Value> = rows
        .iter()
        .map(|(id, _, y)| json!({"id": id, "label": y}))
        .collect();
    let (s, b) = client.post("/v1/services/breast/feedback", &json!({ "labels": labels }));
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["matched"], 569, "{b}");
    let stats = fed.parties[0]
        .cli(&["--json", "serve", "stats", "breast"])
        .json();
    let v = &stats["versions"][0];
    let (ys, ss): (Vec<f64>, Vec<f64>) = rows
        .iter()
        .map(|(id, _, y)| (f64::from(*y), offline[id]))
        .unzip();
    let want = evaluation::auc(&ys, &ss);
    eprintln!("online AUC {} (offline {want}), KS {}", v["auc"], v["ks"]);
    assert!((v["auc"].as_f64().unwrap() - want).abs() < 1e-12, "{stats}");
    assert!((v["ks"].as_f64().unwrap() - evaluation::ks(&ys, &ss)).abs() < 1e-12);
    assert!(v["requests"].as_u64().unwrap() >= 569 * 2 + 50);
    assert!(v["p99_micros"].as_u64().unwrap() > 0);
    let text = fed.parties[0].cli(&["serve", "stats", "breast"]);
    assert!(text.stdout.contains(&version), "{}", text.stdout);
    // The same labels again from a file through the CLI (the guest's CSV: id, y, features):
    // twice the pairs, the same AUC.
    let out = fed.parties[0].cli(&[
        "--json",
        "serve",
        "feedback",
        "breast",
        &example_data("breast_hetero_guest.csv"),
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.json()["matched"], 569, "{}", out.stdout);
    let stats = fed.parties[0]
        .cli(&["--json", "serve", "stats", "breast"])
        .json();
    assert_eq!(stats["versions"][0]["labelled"], 569 * 2, "{stats}");
    assert!((stats["versions"][0]["auc"].as_f64().unwrap() - want).abs() < 1e-12);

    // Prometheus: /metrics passes promtool, and shows the jobs, the partner and the requests.
    let text = scrape(board);
    for needle in [
        "consort_jobs{state=\"success\"} 2",
        "consort_partner_connected{partner=\"insurer-b\"} 1",
        &format!("consort_serving_requests_total{{service=\"breast\",version=\"{version}\"}} "),
        "consort_serving_latency_seconds_bucket{",
        "consort_task_duration_seconds_count{component=\"hetero_lr\"} 2",
        "consort_task_duration_seconds_bucket{le=\"+Inf\",component=\"psi\"} 2",
    ] {
        assert!(text.contains(needle), "{needle} not in:\n{text}");
    }
    let requests = |text: &str| -> u64 {
        let key =
            format!("consort_serving_requests_total{{service=\"breast\",version=\"{version}\"}} ");
        let line = text.lines().find(|l| l.starts_with(&key)).unwrap();
        line[key.len()..].trim().parse().unwrap()
    };
    let before = requests(&text);
    assert!(before >= 569 * 2 + 50, "{before}");
    // The jobs' records came from the host and went to it; the runs exchanged tensors both
    // ways over the data channel; an honest partner had nothing refused.
    let partner = |family: &str| sample(&text, &format!("{family}{{partner=\"insurer-b\"}}"));
    let channel = |direction: &str| {
        let series = format!(
            "consort_data_channel_bytes_total{{partner=\"insurer-b\",direction=\"{direction}\"}}"
        );
        sample(&text, &series)
    };
    assert!(partner("consort_records_replicated_total") > 0, "{text}");
    assert!(partner("consort_records_sent_total") > 0, "{text}");
    assert_eq!(partner("consort_records_refused_total"), 0, "{text}");
    assert!(channel("sent") > 0, "{text}");
    assert!(channel("received") > 0, "{text}");
    client.post("/v1/services/breast/infer", &infer_body(id0, f0));
    assert_eq!(requests(&scrape(board)), before + 1, "the counter moves");

    // A partner that is not the model's guest gets nothing from the host.
    let score = ServeRpc::Score {
        service: "breast".into(),
        version: version.clone(),
        ids: vec![id0.clone()],
    };
    let asked = mallory.app(
        "insurer-b",
        SERVING_TOPIC,
        rmp_serde::to_vec_named(&score).unwrap(),
    );
    let refused_to = |r: Result<PeerResponse, String>, what: &str| match r {
        Ok(PeerResponse::App { body }) => match rmp_serde::from_slice(&body).unwrap() {
            ServeAnswer::Refused { reason } => assert!(reason.contains(what), "{reason}"),
            other => panic!("answered {other:?}"),
        },
        other => panic!("{other:?}"),
    };
    refused_to(asked, "not the guest");
    let take_over = ServeRpc::Prepare {
        tx: 1,
        service: "breast".into(),
        state: Some(WireState {
            model_id: model.clone(),
            versions: vec![version.clone()],
            split: vec![(version.clone(), 100)],
            previous: None,
        }),
    };
    let asked = mallory.app(
        "insurer-b",
        SERVING_TOPIC,
        rmp_serde::to_vec_named(&take_over).unwrap(),
    );
    refused_to(asked, "belongs to bank-a");
    // Names are data and sizes are bounded before anything is loaded; a commit needs a prepare.
    let shaped = |service: &str, versions: usize| ServeRpc::Prepare {
        tx: 2,
        service: service.into(),
        state: Some(WireState {
            model_id: model.clone(),
            versions: (0..versions).map(|i| format!("v{i}")).collect(),
            split: (0..versions).map(|i| (format!("v{i}"), 1)).collect(),
            previous: None,
        }),
    };
    let ask = |rpc: &ServeRpc| {
        mallory.app(
            "insurer-b",
            SERVING_TOPIC,
            rmp_serde::to_vec_named(rpc).unwrap(),
        )
    };
    refused_to(ask(&shaped("../../etc", 1)), "is not a service name");
    refused_to(ask(&shaped("wide", 9)), "1 to 8 versions");
    refused_to(ask(&ServeRpc::Commit { tx: 2 }), "nothing is prepared");
    let asked = mallory.app("insurer-b", SERVING_TOPIC, b"\x92garbage".to_vec());
    assert!(matches!(asked, Ok(PeerResponse::Error { .. })), "{asked:?}");

    // The host's quota: 100 partial scores a minute for breast-q.
    deploy(&fed, &format!("{model}@{version}"), "breast-q", &[]);
    let batch: Vec<Value> = rows
        .iter()
        .take(150)
        .map(|(id, f, _)| infer_body(id, f))
        .collect();
    let (s, b) = client.post("/v1/services/breast-q/batch", &json!({ "requests": batch }));
    assert_eq!(s, 200, "{b}");
    let items = b["items"].as_array().unwrap();
    let over: Vec<&Value> = items.iter().filter(|i| i.get("error").is_some()).collect();
    assert!(!over.is_empty() && over.len() <= 150, "{b}");
    assert!(items.iter().filter(|i| i.get("score").is_some()).count() <= 100);
    assert!(
        over.iter()
            .all(|i| i["error"].as_str().unwrap().contains("quota") && i["code"] == 503),
        "{b}"
    );
    let host_stats = fed.parties[1]
        .cli(&["--json", "serve", "stats", "breast-q"])
        .json();
    assert!(
        host_stats["quota_refused"].as_u64().unwrap() > 0,
        "{host_stats}"
    );

    // Kill the host: answers fail within the deadline, naming it (or guest-only, flagged).
    deploy(
        &fed,
        &format!("{model}@{version}"),
        "breast-go",
        &["--on-host-failure", "guest-only", "--deadline-ms", "1500"],
    );
    let (s, b) = client.post("/v1/services/breast-go/infer", &infer_body(id0, f0));
    assert_eq!((s, &b["guest_only"]), (200, &json!(false)), "{b}");
    d[1].kill9();
    let t0 = Instant::now();
    let (s, b) = client.post("/v1/services/breast/infer", &infer_body(id0, f0));
    let took = t0.elapsed();
    assert_eq!(s, 503, "{b}");
    assert_eq!(b["party"], "insurer-b", "{b}");
    assert!(took < Duration::from_millis(1500 + 1000), "{took:?}");
    let (s, b) = client.post("/v1/services/breast-go/infer", &infer_body(id0, f0));
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["guest_only"], true, "{b}");

    // Restart the host: serving resumes without a redeploy.
    d[1] = fed.parties[1].start();
    wait_connected(&fed);
    let again = wait_for("the host to serve again", T, || {
        let (s, b) = client.post("/v1/services/breast/infer", &infer_body(id0, f0));
        (s == 200).then_some(b)
    });
    assert!((again["score"].as_f64().unwrap() - offline[id0]).abs() <= 1e-9);
    assert!(d[1].log().contains("deployment restored"), "{}", d[1].log());

    // Restart the guest: the same.
    d[0].kill9();
    d[0] = fed.parties[0].start();
    wait_connected(&fed);
    let mut client = Http::new(http, None);
    let again = wait_for("the guest to serve again", T, || {
        client
            .post_raw(
                "/v1/services/breast/infer",
                infer_body(id0, f0).to_string().into_bytes(),
            )
            .ok()
            .filter(|(s, _)| *s == 200)
            .map(|(_, b)| b)
    });
    assert!((again["score"].as_f64().unwrap() - offline[id0]).abs() <= 1e-9);
    let list = fed.parties[0].cli(&["--json", "serve", "list"]).json();
    assert_eq!(list["services"].as_array().unwrap().len(), 3, "{list}");

    // Batch from the CLI, through the same path: ids only, the guest's features from its own
    // table (its source for the service); an id it lacks is named in the error column.
    let mut ids = String::from("id\n");
    for (id, _, _) in &rows {
        ids.push_str(&format!("{id}\n"));
    }
    let ids = fed.job_file("ids.csv", &ids);
    let scores = fed.job_file("scores.csv", "");
    let out = fed.parties[0].cli(&["serve", "predict", "breast", "--input", &ids, "-o", &scores]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let text = std::fs::read_to_string(&scores).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("id,score,label,version,guest_only,error")
    );
    let mut n = 0;
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        assert!(
            (f[1].parse::<f64>().unwrap() - offline[f[0]]).abs() <= 1e-9,
            "{l}"
        );
        n += 1;
    }
    assert_eq!(n, 569);
    let ids = fed.job_file("ids2.csv", &format!("id\n{id0}\nnot-an-id\n"));
    let out = fed.parties[0].cli(&["serve", "predict", "breast", "--input", &ids]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stdout
            .contains("bank-a has no features for id not-an-id"),
        "{}",
        out.stdout
    );

    // A host whose features come from its adapter answers exactly as from its table, across
    // the adapter's restarts.
    deploy(&fed, &format!("{model}@{version}"), "breast-ad", &[]);
    for (id, f, _) in rows.iter().take(20) {
        let (s, b) = client.post("/v1/services/breast-ad/infer", &infer_body(id, f));
        assert_eq!(s, 200, "{b}");
        assert!(
            (b["score"].as_f64().unwrap() - offline[id]).abs() <= 1e-9,
            "{b}"
        );
    }
    let (s, b) = client.post(
        "/v1/services/breast-ad/infer",
        &infer_body("no-such-id", f0),
    );
    assert_eq!(s, 400, "{b}");
    deploy(&fed, &format!("{model}@{version}"), "breast-http", &[]);
    for (id, f, _) in rows.iter().take(20) {
        let (s, b) = client.post("/v1/services/breast-http/infer", &infer_body(id, f));
        assert_eq!(s, 200, "{b}");
        assert!(
            (b["score"].as_f64().unwrap() - offline[id]).abs() <= 1e-9,
            "{b}"
        );
    }
    // The endpoint gone: the host refuses, and the guest names it.
    endpoint.0.kill().unwrap();
    endpoint.0.wait().unwrap();
    let (s, b) = client.post("/v1/services/breast-http/infer", &infer_body(id0, f0));
    assert_eq!(s, 503, "{b}");
    assert!(
        b["error"].as_str().unwrap().contains("feature endpoint"),
        "{b}"
    );

    // Declared pre- and post-processing: a default for a missing feature, clipping, a
    // calibration and a threshold, each checked against the plain service's answers.
    deploy(
        &fed,
        &format!("{model}@{version}"),
        "breast-pp",
        &[
            "--default",
            "x3=0.1",
            "--clip",
            "x0=-0.5:0.5",
            "--calibrate",
            "2,-0.5",
            "--threshold",
            "0.5",
        ],
    );
    let score = |c: &mut Http, svc: &str, f: &serde_json::Map<String, Value>| {
        let (s, b) = c.post(&format!("/v1/services/{svc}/infer"), &infer_body(id0, f));
        assert_eq!(s, 200, "{b}");
        (b["score"].as_f64().unwrap(), b["label"].clone())
    };
    let mut x = f0.clone();
    x.insert("x3".into(), json!(0.1));
    x.insert("x0".into(), json!(0.5));
    let (plain, no_label) = score(&mut client, "breast", &x);
    assert_eq!(no_label, Value::Null);
    let logit = (plain / (1.0 - plain)).ln();
    let calibrated = 1.0 / (1.0 + (-(2.0 * logit - 0.5)).exp());
    let mut y = f0.clone();
    y.remove("x3");
    y.insert("x0".into(), json!(7.5));
    let (pp, label) = score(&mut client, "breast-pp", &y);
    assert!((pp - calibrated).abs() < 1e-12, "{pp} {calibrated}");
    assert_eq!(label, json!(i32::from(pp >= 0.5)));

    // Undeploy removes it at both parties.
    let out = fed.parties[0].cli(&["serve", "undeploy", "breast-go"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let out = fed.parties[1].cli(&["serve", "show", "breast-go"]);
    assert_eq!(out.code, Some(1), "{out:?}");
}

/// The version that answered each of `ids` (through the batch endpoint).
fn versions_of(client: &mut Http, ids: &[String], rows: &[GuestRow]) -> Vec<String> {
    let requests: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| infer_body(id, &rows[i % rows.len()].1))
        .collect();
    let (s, b) = client.post("/v1/services/risk/batch", &json!({ "requests": requests }));
    assert_eq!(s, 200, "{b}");
    b["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            i["version"]
                .as_str()
                .unwrap_or_else(|| panic!("{i}"))
                .to_owned()
        })
        .collect()
}

/// The traffic weights of `service` at `party`, by version.
fn weights(party: &Party, service: &str) -> Vec<(String, u64)> {
    let v = party.cli(&["--json", "serve", "show", service]).json();
    v["service"]["versions"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|x| {
            (
                x["version"].as_str().unwrap().to_owned(),
                x["weight"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn gray_rollout_splits_promotes_and_rolls_back_at_every_party() {
    // The host scores 2,000 ids from its own table (its 20 breast features, made up).
    let s = setup(
        "",
        "\n[serving.sources.risk]\ntable = \"wide_host\"\nquota_per_minute = 100000000\n",
    );
    let _d = start(&s.fed);
    let fed = &s.fed;
    upload_breast_hetero(fed);
    let mut csv = String::from("id");
    for j in 0..20 {
        csv.push_str(&format!(",x{j}"));
    }
    csv.push('\n');
    let ids: Vec<String> = (0..2000).map(|i| format!("w{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        csv.push_str(id);
        for j in 0..20 {
            csv.push_str(&format!(",{:.4}", ((i * 7 + j * 3) as f64).sin()));
        }
        csv.push('\n');
    }
    let file = fed.job_file("wide_host.csv", &csv);
    let out = fed.parties[1].cli(&["data", "upload", &file, "--name", "wide_host"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let (model, v1) = train(fed);
    let (_, v2) = train(fed);
    let (_, v3) = train(fed);
    let rows = guest_rows();
    let mut client = Http::new(s.http, None);
    let (guest, host) = (&fed.parties[0], &fed.parties[1]);

    deploy(fed, &format!("{model}@{v1}"), "risk", &[]);
    deploy(fed, &format!("{model}@{v2}"), "risk", &[]);
    let loaded = vec![(v1.clone(), 100), (v2.clone(), 0)];
    assert_eq!(weights(guest, "risk"), loaded);
    assert_eq!(weights(host, "risk"), loaded);

    // 90/10, sticky by id, agreed by both parties.
    let out = guest.cli(&[
        "serve",
        "route",
        "risk",
        "--split",
        &format!("{v1}=90,{v2}=10"),
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let split = vec![(v1.clone(), 90), (v2.clone(), 10)];
    assert_eq!(weights(host, "risk"), split);
    let routed = versions_of(&mut client, &ids, &rows);
    let share = routed.iter().filter(|v| **v == v2).count() as f64 / ids.len() as f64;
    eprintln!("observed share of {v2} over 2,000 requests: {share:.4}");
    assert!((share - 0.10).abs() <= 0.03, "{share}");
    assert_eq!(
        versions_of(&mut client, &ids, &rows),
        routed,
        "sticky by id"
    );

    // Promote: every party, every request.
    let out = guest.cli(&["serve", "promote", "risk", &v2]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(weights(host, "risk").contains(&(v2.clone(), 100)));
    assert!(
        versions_of(&mut client, &ids[..300], &rows)
            .iter()
            .all(|v| *v == v2)
    );

    // Rollback: the split before, at every party, with the same ids on the same versions.
    let out = guest.cli(&["serve", "rollback", "risk"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(weights(host, "risk"), split);
    assert_eq!(weights(guest, "risk"), split);
    assert_eq!(versions_of(&mut client, &ids, &rows), routed);

    board_shows_and_moves_the_service(&s, &model, [&v1, &v2, &v3], &split);

    // A route the host cannot follow (it no longer has v3) changes nothing anywhere.
    let out = host.cli(&["model", "delete", &format!("{model}@{v3}"), "--force"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let out = guest.cli(&[
        "serve",
        "route",
        "risk",
        "--split",
        &format!("{v1}=50,{v3}=50"),
    ]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("nothing changed anywhere") && out.stderr.contains("insurer-b refused"),
        "{}",
        out.stderr
    );
    assert_eq!(weights(guest, "risk"), split);
    assert_eq!(weights(host, "risk"), split);
    assert_eq!(versions_of(&mut client, &ids[..300], &rows), routed[..300]);
}

/// The guest's board: the models page with the model's three versions in its history and a
/// diff; the serving page with the split; promote and rollback through the board (the page's
/// CSRF token, the same control requests as the CLI) change every party.
fn board_shows_and_moves_the_service(
    s: &Setup,
    model: &str,
    [v1, v2, v3]: [&String; 3],
    split: &[(String, u64)],
) {
    let (guest, host) = (&s.fed.parties[0], &s.fed.parties[1]);
    let url = guest.cli(&["--json", "board"]).json()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut browser = consort_tests::browser::Browser::launch().unwrap();
    let mut page = browser.open(&url).unwrap();
    let base = format!("http://{}/", s.board);
    let wait = |page: &mut consort_tests::browser::Page<'_>, js: &str| {
        page.wait_for(js, Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("{e}"))
    };
    page.navigate(&format!("{base}#/models")).unwrap();
    wait(
        &mut page,
        &format!(
            "document.querySelector('#models tr[data-model=\"{model}\"]')?.children[2]?.textContent === '3'"
        ),
    );
    page.navigate(&format!("{base}#/model/{model}")).unwrap();
    let versions = wait(
        &mut page,
        "(() => { const r = [...document.querySelectorAll('#history tbody tr')]; \
         return r.length === 3 && r.map(tr => tr.children[2].textContent); })()",
    );
    assert_eq!(versions, json!([v3, v2, v1]), "newest first");
    wait(
        &mut page,
        "document.querySelector('#diff table, #diff p') !== null",
    );
    let shots = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("board");
    std::fs::create_dir_all(&shots).unwrap();
    page.screenshot(&shots.join("model-page.png")).unwrap();
    page.navigate(&format!("{base}#/serving")).unwrap();
    let weights_shown = wait(
        &mut page,
        "(() => { const r = [...document.querySelectorAll('[data-service=risk] tr[data-version]')]; \
         return r.length === 2 && r.map(tr => [tr.dataset.version, Number(tr.dataset.weight)]); })()",
    );
    assert_eq!(weights_shown, json!(split));
    page.screenshot(&shots.join("serving-page.png")).unwrap();

    let board = consort_tests::board::Session::login(&url);
    let (code, body) = board.act("/serving/risk/promote", &json!({ "version": v2 }));
    assert_eq!(code, 200, "{body}");
    assert!(weights(host, "risk").contains(&(v2.clone(), 100)));
    assert!(weights(guest, "risk").contains(&(v2.clone(), 100)));
    let (code, body) = board.act("/serving/risk/rollback", &json!({}));
    assert_eq!(code, 200, "{body}");
    assert_eq!(weights(host, "risk"), split);
    assert_eq!(weights(guest, "risk"), split);
    let (code, served) = board.get("/serving/risk");
    assert_eq!(code, 200);
    assert_eq!(served["service"]["versions"].as_array().unwrap().len(), 2);
    let _ = v1;
}

#[test]
fn the_apis_ask_for_the_token_over_tls_when_configured() {
    let fed = Federation::init(&["bank-a"]);
    let a = &fed.parties[0];
    let (http, grpc) = (free_port(), free_port());
    let tls = format!("{}/data/tls", env!("CARGO_MANIFEST_DIR"));
    let token = "0123456789abcdef0123456789abcdef";
    let token_file = a.dir.join("api.token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let mode = |m: u32| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(m)).unwrap();
    };
    mode(0o644);
    fed.append_config(
        0,
        &format!(
            "\n[serving]\nlisten = \"127.0.0.1:{http}\"\ngrpc_listen = \"127.0.0.1:{grpc}\"\n\
             token_file = \"api.token\"\ntls_cert = \"{tls}/server.pem\"\ntls_key = \"{tls}/server.key\"\n"
        ),
    );
    // A token file others can read is refused at start, with the reason.
    let mut d = a.spawn();
    let status = d.wait_exit(Duration::from_secs(20));
    assert!(!status.success());
    assert!(d.log().contains("readable by others"), "{}", d.log());
    mode(0o600);
    let d = a.start();

    let ca = std::fs::read(format!("{tls}/ca.pem")).unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], http));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let body = json!({"id": "1", "features": {"x0": 1.0}})
        .to_string()
        .into_bytes();
    rt.block_on(async {
        for (given, want) in [
            (None, 401),
            (Some("wrong-token-wrong-token"), 401),
            (Some(token), 404),
        ] {
            let mut c = HttpConn::connect_tls(addr, &ca, given.map(str::to_owned))
                .await
                .unwrap();
            let (status, b) = c
                .post("/v1/services/none/infer", body.clone())
                .await
                .unwrap();
            assert_eq!(status, want, "{given:?}: {b:?}");
        }
        // Plain HTTP on the TLS port gets no answer.
        let mut plain = HttpConn::connect(addr, Some(token.into())).await.unwrap();
        assert!(
            plain
                .post("/v1/services/none/infer", body.clone())
                .await
                .is_err()
        );

        let channel = tonic::transport::Endpoint::from_shared(format!("https://localhost:{grpc}"))
            .unwrap()
            .tls_config(
                tonic::transport::ClientTlsConfig::new()
                    .ca_certificate(tonic::transport::Certificate::from_pem(&ca))
                    .domain_name("localhost"),
            )
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut c = pb::inference_client::InferenceClient::new(channel);
        let req = || pb::InferRequest {
            service: "none".into(),
            id: "1".into(),
            ..Default::default()
        };
        let e = c.infer(req()).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
        let mut r = tonic::Request::new(req());
        r.metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let e = c.infer(r).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");
    });

    // Beyond loopback, the APIs need both a token and TLS.
    assert_eq!(a.cli(&["shutdown"]).code, Some(0));
    drop(d);
    fed.edit_config(
        0,
        &format!("listen = \"127.0.0.1:{http}\""),
        &format!("listen = \"0.0.0.0:{http}\""),
    );
    fed.edit_config(0, "token_file = \"api.token\"\n", "");
    let mut d = a.spawn();
    assert!(!d.wait_exit(Duration::from_secs(20)).success());
    assert!(d.log().contains("beyond loopback"), "{}", d.log());
}
