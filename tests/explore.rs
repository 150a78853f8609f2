//! `addmul explore` over real HTTP: the binary is started on an ephemeral
//! port of 127.0.0.1 and every request goes through the network stack, as a
//! browser's would.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::Temp;
use serde_json::{Value, json};

/// `addmul explore` on a free port with the runs folder `runs`; its
/// address is the first line of its standard output, what it says after on
/// standard error (a few lines at start).
fn spawn(runs: &std::path::Path, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_addmul"))
        .args(["explore", "--port", "0", "--runs"])
        .arg(runs)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A running explorer, stopped when dropped.
struct Explorer {
    child: Child,
    url: String,
    agent: ureq::Agent,
    dir: Temp,
}

impl Explorer {
    fn start(name: &str, extra: &[&str]) -> Self {
        let dir = Temp::new(name);
        let mut child = spawn(&dir.0.join("runs"), extra);
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().strip_prefix("explorer: ").unwrap_or_else(|| panic!("no address: {line:?}")).to_string();
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        Explorer { child, url, agent, dir }
    }

    fn answer(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, String, String) {
        let mut response = response.unwrap();
        let kind = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        let status = response.status().as_u16();
        (status, kind, response.body_mut().read_to_string().unwrap())
    }

    fn get_raw(&self, path: &str) -> (u16, String, String) {
        Self::answer(self.agent.get(format!("{}{}", self.url, path.trim_start_matches('/'))).call())
    }

    fn post_raw(&self, path: &str, body: &str) -> (u16, String, String) {
        Self::answer(
            self.agent
                .post(format!("{}{}", self.url, path.trim_start_matches('/')))
                .header("content-type", "application/json")
                .send(body),
        )
    }

    fn json(answer: (u16, String, String)) -> (u16, Value) {
        let (status, kind, body) = answer;
        assert!(kind.starts_with("application/json"), "{status} {kind}: {body}");
        (status, serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}")))
    }

    fn get(&self, path: &str) -> (u16, Value) {
        Self::json(self.get_raw(path))
    }

    fn post(&self, path: &str, body: Value) -> (u16, Value) {
        Self::json(self.post_raw(path, &body.to_string()))
    }

    /// Posts and expects a 200.
    fn ok(&self, path: &str, body: Value) -> Value {
        let (status, value) = self.post(path, body);
        assert_eq!(status, 200, "{path}: {value}");
        value
    }

    /// Trains the tiny preset for `steps` steps on a pasted text and waits
    /// for the end through the event stream; the events' names and data.
    fn train(&self, steps: u64) -> Vec<(String, Value)> {
        let text = "the cat sat on the mat. the dog sat on the log. ".repeat(40);
        let started =
            self.ok("/api/train", json!({"preset": "tiny", "text": "pasted", "pasted": text, "max_iters": steps}));
        assert_eq!(started["state"], "running");
        // The stream ends with the job's final status.
        let (status, kind, body) = self.get_raw("/api/train/events");
        assert_eq!(status, 200);
        assert!(kind.starts_with("text/event-stream"), "{kind}");
        let mut events = Vec::new();
        let mut name = String::new();
        for line in body.lines() {
            if let Some(n) = line.strip_prefix("event: ") {
                name = n.to_string();
            } else if let Some(data) = line.strip_prefix("data: ") {
                events.push((name.clone(), serde_json::from_str(data).unwrap()));
            }
        }
        events
    }
}

impl Drop for Explorer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn every_page_and_asset_is_served_and_unknown_paths_are_404() {
    let ex = Explorer::start("explore-pages", &[]);
    for page in ["/", "/neuron", "/tokens", "/embeddings", "/attention", "/next", "/train", "/translate"] {
        let (status, kind, body) = ex.get_raw(page);
        assert_eq!(status, 200, "{page}");
        assert!(kind.starts_with("text/html"), "{page}: {kind}");
        assert!(body.contains("/assets/explore.js"), "{page} does not load the shared script");
        // Nothing from the network: no address but the explorer's own.
        assert!(!body.contains("http://") && !body.contains("https://"), "{page} refers to the network");
    }
    assert!(ex.get_raw("/assets/explore.css").1.starts_with("text/css"));
    assert!(ex.get_raw("/assets/explore.js").1.starts_with("text/javascript"));
    assert_eq!(ex.get_raw("/nowhere").0, 404);
    let (status, error) = ex.get("/api/nowhere");
    assert_eq!(status, 404);
    assert!(error["error"].as_str().unwrap().contains("/api/nowhere"));
    let (status, state) = ex.get("/api/status");
    assert_eq!(status, 200);
    assert_eq!(state["model"], Value::Null, "a fresh runs folder has no model");
}

#[test]
fn the_neuron_page_shows_the_article_networks_own_sums() {
    use addmul::leafflower::{ARTICLE_LEAF, ArticleNetwork};
    let ex = Explorer::start("explore-neuron", &[]);
    let answer = ex.ok("/api/neuron", json!({"inputs": ARTICLE_LEAF}));
    let expected = ArticleNetwork::new([0.0; 3]).evaluate(ARTICLE_LEAF).unwrap();
    for (neuron, sum) in answer["hidden"].as_array().unwrap().iter().zip(expected.hidden) {
        assert_eq!(neuron["sum"].as_f64().unwrap(), sum);
        let products: f64 = neuron["products"].as_array().unwrap().iter().map(|p| p.as_f64().unwrap()).sum();
        assert!((products - sum).abs() < 1e-9);
    }
    assert_eq!(answer["class"], expected.class.name());
    // Change one weight: its product and the sums follow.
    let mut weights = answer["weights"].clone();
    weights["hidden"][0][3] = json!(1.0);
    weights["hidden_bias"][0] = json!(0.25);
    let changed = ex.ok("/api/neuron", json!({"inputs": ARTICLE_LEAF, "weights": weights}));
    assert_eq!(changed["hidden"][0]["products"][3].as_f64().unwrap(), ARTICLE_LEAF[3]);
    let before = answer["hidden"][0]["sum"].as_f64().unwrap();
    let after = changed["hidden"][0]["sum"].as_f64().unwrap();
    assert!((after - before - (1.0 - 0.46) * ARTICLE_LEAF[3] - 0.25).abs() < 1e-9, "{before} -> {after}");
    // Training: the losses fall and the classifier learns.
    let trained = ex.ok("/api/neuron/train", json!({"epochs": 40, "hidden": 3, "seed": 7}));
    let epochs = trained["epochs"].as_array().unwrap();
    let loss = |e: &Value| e["train"].as_f64().unwrap();
    assert!(loss(epochs.last().unwrap()) < 0.5 * loss(&epochs[0]), "{:?}", epochs.iter().map(loss).collect::<Vec<_>>());
    assert!(trained["val_accuracy"].as_f64().unwrap() > 0.8, "{}", trained["val_accuracy"]);
    assert_eq!(trained["decision"]["flower"].as_array().unwrap().len(), 32);
}

#[test]
fn tokens_are_split_by_every_tokenizer_and_cats_is_cat_plus_s() {
    let ex = Explorer::start("explore-tokens", &[]);
    let answer = ex.ok("/api/tokens", json!({"text": "the cats"}));
    assert_eq!(answer["chars"], 8);
    let by_name = |name: &str| -> Vec<String> {
        let t = answer["tokenizers"].as_array().unwrap().iter().find(|t| t["name"] == name).unwrap();
        t["pieces"].as_array().unwrap().iter().map(|p| p["text"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(by_name("characters").concat(), "the cats");
    assert_eq!(by_name("characters").len(), 8);
    assert_eq!(by_name("BPE").concat(), "the cats");
    assert!(by_name("BPE").len() < 8);
    // Chapter 6's BPE of the nursery rhymes: " cats" = " cat" + "s".
    assert_eq!(by_name("BPE (rhymes)"), ["the", " cat", "s"]);
    assert_eq!(by_name("unigram").concat().replace('▁', " ").trim(), "the cats");
    // GPT-2's own ids for "the cats" (tiktoken's: 1169, 11875).
    let gpt2 = answer["tokenizers"].as_array().unwrap().iter().find(|t| t["name"] == "GPT-2").unwrap();
    let ids: Vec<u64> = gpt2["pieces"].as_array().unwrap().iter().map(|p| p["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [1169, 11875]);
    // Typing more changes the count.
    let longer = ex.ok("/api/tokens", json!({"text": "the cats sat on the mat"}));
    assert!(longer["tokenizers"][0]["pieces"].as_array().unwrap().len() > 8);
}

#[test]
fn bad_requests_get_a_4xx_json_error_and_the_server_keeps_serving() {
    let ex = Explorer::start("explore-bad", &[]);
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("/api/neuron", "{not json".into(), 400, "not what this endpoint reads"),
        ("/api/neuron", json!({"inputs": [1, 2]}).to_string(), 400, "length 4"),
        ("/api/neuron", json!({"inputs": [1, 2, 3, 4], "wieghts": null}).to_string(), 400, "unknown field `wieghts`"),
        ("/api/tokens", json!({"text": "x".repeat(70_000)}).to_string(), 400, "longer than"),
        ("/api/next", json!({"prompt": "hello"}).to_string(), 409, "no model yet"),
        ("/api/attention", json!({"prompt": "hello"}).to_string(), 409, "no model yet"),
        ("/api/neuron/train", json!({"epochs": 0}).to_string(), 400, "epochs 0"),
        ("/api/train", json!({"preset": "huge", "text": "book"}).to_string(), 400, "preset `huge`"),
        (
            "/api/train",
            json!({"preset": "tiny", "text": "pasted", "pasted": "short"}).to_string(),
            400,
            "100 characters",
        ),
        ("/api/train/stop", "{}".into(), 409, "no training job"),
        ("/api/model", json!({"path": "/etc"}).to_string(), 403, "outside the folders"),
        ("/api/model", json!({"path": "../../../../../../../../etc"}).to_string(), 403, "outside the folders"),
        ("/api/model", json!({"path": "no-such-run"}).to_string(), 404, "no folder"),
    ];
    for (path, body, status, says) in cases {
        let (got, error) = Explorer::json(ex.post_raw(path, &body));
        assert_eq!(got, status, "{path} {}: {error}", &body[..body.len().min(80)]);
        let message = error["error"].as_str().unwrap();
        assert!(message.contains(says), "{path}: `{message}` does not say `{says}`");
    }
    // A body over the limit is refused from its length, before it is sent
    // (a client that sends it anyway may see the connection close).
    {
        use std::io::{Read, Write};
        let address = ex.url.trim_start_matches("http://").trim_end_matches('/');
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        stream.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
        let head = format!(
            "POST /api/tokens HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
            5 << 20
        );
        stream.write_all(head.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("larger than"), "{answer}");
    }
    // No file outside the allowed folders through the book or the assets.
    for path in [
        "/book/../Cargo.toml",
        "/book/%2e%2e/%2e%2e/Cargo.toml",
        "/assets/../../Cargo.toml",
        "/book/..%2f..%2fCargo.toml",
    ] {
        let (status, _, body) = ex.get_raw(path);
        assert_eq!(status, 404, "{path}: {body}");
        assert!(!body.contains("[workspace]"), "{path} served the repository's Cargo.toml");
    }
    assert_eq!(ex.get("/api/status").0, 200, "the server stopped serving");
}

#[test]
fn training_streams_its_losses_then_every_model_page_answers_from_the_trained_model() {
    let ex = Explorer::start("explore-train", &[]);
    let events = ex.train(60);
    let steps: Vec<&Value> = events.iter().filter(|(n, _)| n == "step").map(|(_, v)| v).collect();
    assert_eq!(steps.len(), 60, "one event per step");
    assert_eq!(steps.last().unwrap()["step"], 60);
    assert!(events.iter().any(|(n, _)| n == "eval"));
    let (last, status) = events.last().unwrap();
    assert_eq!(last, "status");
    assert_eq!(status["state"], "done", "{status}");
    let loss = |i: usize| steps[i]["loss"].as_f64().unwrap();
    assert!(loss(59) < loss(0), "the loss did not fall: {} -> {}", loss(0), loss(59));
    // A reloaded page replays the whole run.
    let (_, _, again) = ex.get_raw("/api/train/events");
    assert_eq!(again.matches("event: step").count(), 60);

    let (_, state) = ex.get("/api/status");
    let model = &state["model"];
    assert!(model["path"].as_str().unwrap().ends_with("explore-tiny"), "{state}");
    let block = model["block_size"].as_u64().unwrap() as usize;

    // Attention: rows sum to 1, nothing from the future.
    let prompt = "the cat sat";
    let attention = ex.ok("/api/attention", json!({"prompt": prompt}));
    let t = attention["tokens"].as_array().unwrap().len();
    assert_eq!(t, prompt.len());
    for heads in attention["maps"].as_array().unwrap() {
        for map in heads.as_array().unwrap() {
            for (q, row) in map.as_array().unwrap().iter().enumerate() {
                let row: Vec<f64> = row.as_array().unwrap().iter().map(|w| w.as_f64().unwrap()).collect();
                assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-5);
                assert!(row[q + 1..].iter().all(|&w| w == 0.0), "query {q} sees the future: {row:?}");
            }
        }
    }
    let too_long = "a".repeat(block + 1);
    let (status, error) = ex.post("/api/attention", json!({"prompt": too_long}));
    assert_eq!(status, 400);
    assert!(error["error"].as_str().unwrap().contains("longer than the model's context"), "{error}");
    let (status, error) = ex.post("/api/next", json!({"prompt": "the ✓"}));
    assert_eq!(status, 400, "a character the model has no id for: {error}");

    // The next token: the settings change the distribution.
    let warm = ex.ok("/api/next", json!({"prompt": "the ca", "temperature": 1.0}));
    let cold = ex.ok("/api/next", json!({"prompt": "the ca", "temperature": 0.3}));
    let first = |v: &Value| v["candidates"][0]["probability"].as_f64().unwrap();
    assert!(first(&cold) > first(&warm), "a lower temperature sharpens: {} vs {}", first(&cold), first(&warm));
    let cut = ex.ok("/api/next", json!({"prompt": "the ca", "top_k": 3, "show": 500}));
    assert_eq!(cut["kept"], 3);
    let total: f64 = cut["candidates"].as_array().unwrap().iter().map(|c| c["probability"].as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-9);
    let (status, error) = ex.post("/api/next", json!({"prompt": "the", "top_p": 1.5}));
    assert_eq!(status, 400, "{error}");

    // The cache changes the time, not the tokens.
    let kv = ex.ok("/api/kv-cache", json!({"prompt": "the ", "tokens": 16}));
    assert_eq!(kv["same"], true);
    let sample = ex.ok("/api/sample", json!({"prompt": "the ", "tokens": 30}));
    assert!(!sample["text"].as_str().unwrap().is_empty());
    let emb = ex.ok("/api/embeddings", json!({"token": "a", "k": 3}));
    assert_eq!(emb["points"].as_array().unwrap().len(), model["vocab_size"].as_u64().unwrap() as usize);
    assert_eq!(emb["neighbours"].as_array().unwrap().len(), 3);
    let (status, _) = ex.post("/api/embeddings", json!({"token": "at", "k": 3}));
    assert_eq!(status, 400, "two characters are two tokens of a character model");

    // The run can be chosen by its folder (inside the runs folder).
    let chosen = ex.ok("/api/model", json!({"path": "explore-tiny"}));
    assert_eq!(chosen["parameters"], model["parameters"]);
    assert!(ex.dir.0.join("runs/explore-tiny/latest").is_file());
}

#[test]
fn one_training_job_at_a_time_and_stop_keeps_a_checkpoint() {
    let ex = Explorer::start("explore-jobs", &[]);
    let text = "to be or not to be, that is the question. ".repeat(40);
    ex.ok("/api/train", json!({"preset": "tiny", "text": "pasted", "pasted": text, "max_iters": 100_000}));
    let (status, error) = ex.post("/api/train", json!({"preset": "tiny", "text": "book"}));
    assert_eq!(status, 409, "{error}");
    assert!(error["error"].as_str().unwrap().contains("already running"));
    // Let it take a few steps, then stop it.
    let run = ex.dir.0.join("runs/explore-tiny");
    let start = std::time::Instant::now();
    let stepped = || std::fs::read_to_string(run.join("log.jsonl")).is_ok_and(|l| l.contains(r#""type":"step""#));
    while !stepped() {
        assert!(start.elapsed().as_secs() < 120, "training did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let stopping = ex.ok("/api/train/stop", json!({}));
    assert_eq!(stopping["state"], "running");
    let (_, _, events) = ex.get_raw("/api/train/events");
    let last = events.lines().rev().find(|l| l.starts_with("data: ")).unwrap();
    let status: Value = serde_json::from_str(last.trim_start_matches("data: ")).unwrap();
    assert_eq!(status["state"], "stopped", "{status}");
    assert!(run.join("latest").is_file(), "stopping saved no checkpoint");
    assert!(ex.get("/api/status").1["model"]["path"].as_str().unwrap().ends_with("explore-tiny"));
}

#[test]
fn a_model_given_with_model_is_used_and_only_its_folder_and_the_runs_are_readable() {
    // Train a model with the explorer, then start another explorer on it.
    let first = Explorer::start("explore-given-train", &[]);
    first.train(10);
    let run = first.dir.0.join("runs/explore-tiny");
    let ex = Explorer::start("explore-given", &["--model", run.to_str().unwrap()]);
    let (_, state) = ex.get("/api/status");
    let shown = state["model"]["path"].as_str().unwrap();
    assert!(run.canonicalize().unwrap().ends_with(shown), "{shown}");
    assert!(state["models"].as_array().unwrap().iter().any(|m| m == run.canonicalize().unwrap().to_str().unwrap()));
    // A checkpoint inside the given folder may be chosen; its parent may not.
    let checkpoint = run.join("step-000010");
    assert_eq!(ex.post("/api/model", json!({"path": checkpoint.to_str().unwrap()})).0, 200);
    let (status, _) = ex.post("/api/model", json!({"path": first.dir.0.to_str().unwrap()}));
    assert_eq!(status, 403);
}

#[test]
fn a_bad_model_or_address_stops_the_command_with_a_clear_error() {
    let dir = Temp::new("explore-refused");
    let out = Command::new(env!("CARGO_BIN_EXE_addmul"))
        .args(["explore", "--port", "0", "--model"])
        .arg(dir.0.join("missing"))
        .arg("--runs")
        .arg(dir.0.join("runs"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--model") && err.contains("missing"), "{err}");
    let out =
        Command::new(env!("CARGO_BIN_EXE_addmul")).args(["explore", "--host", "not-an-address"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--host"));
}

#[test]
fn the_translator_trains_on_demand_then_translates_with_its_beam_and_cross_attention() {
    let ex = Explorer::start("explore-translate", &[]);
    let (status, error) = ex.post("/api/translate", json!({"text": "twenty-one"}));
    assert_eq!(status, 409, "{error}");
    assert_eq!(ex.post("/api/translate/train", json!({"steps": 10})).0, 400);
    let started = ex.ok("/api/translate/train", json!({"steps": 150}));
    assert_eq!(started["state"], "training");
    assert_eq!(ex.post("/api/translate/train", json!({"steps": 150})).0, 409, "one translator job at a time");
    let start = std::time::Instant::now();
    let status = loop {
        let (_, s) = ex.get("/api/translate/status");
        if s["state"] != "training" {
            break s;
        }
        assert!(start.elapsed().as_secs() < 300, "the translator did not finish training");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(status["state"], "ready", "{status}");
    assert!(status["parameters"].as_u64().unwrap() > 0);
    let answer = ex.ok("/api/translate", json!({"text": "three hundred forty-two", "beam": 3}));
    assert_eq!(answer["number"], 342);
    assert_eq!(answer["reference"], addmul::transformer::tasks::numbers::german(342).unwrap());
    assert_eq!(answer["english"], json!(["three", "hundred", "forty", "-", "two"]));
    let beams = answer["beams"].as_array().unwrap();
    assert!(!beams.is_empty());
    assert!(beams.windows(2).all(|w| w[0]["score"].as_f64() >= w[1]["score"].as_f64()), "best score first");
    let attention = &answer["attention"];
    assert_eq!(attention["source"].as_array().unwrap().len(), 5);
    for row in attention["weights"].as_array().unwrap() {
        let total: f64 = row.as_array().unwrap().iter().map(|w| w.as_f64().unwrap()).sum();
        assert!((total - 1.0).abs() < 1e-3, "{row}");
    }
    assert_eq!(ex.ok("/api/translate", json!({"text": "342"}))["number"], 342);
    for (text, beam) in [("fourty", 4), ("1000000", 4), ("twenty-one", 9)] {
        let (status, error) = ex.post("/api/translate", json!({"text": text, "beam": beam}));
        assert_eq!(status, 400, "{text}: {error}");
    }
}

#[test]
fn a_hugging_face_gpt2_folder_is_explored_with_its_own_tokenizer() {
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hf_gpt2_tiny");
    let ex = Explorer::start("explore-hf", &["--model", folder.to_str().unwrap()]);
    let (_, state) = ex.get("/api/status");
    assert_eq!(state["model"]["tokenizer"], "bpe", "{state}");
    let attention = ex.ok("/api/attention", json!({"prompt": "Hello world"}));
    let maps = attention["maps"].as_array().unwrap();
    let layers = state["model"]["n_layer"].as_u64().unwrap();
    assert_eq!(maps.len() as u64, layers);
    assert_eq!((attention["layers"].as_u64(), attention["first_layer"].as_u64()), (Some(layers), Some(0)));
    // One block on request (what a large model sends by default).
    let last = ex.ok("/api/attention", json!({"prompt": "Hello world", "layer": layers - 1}));
    assert_eq!(last["maps"].as_array().unwrap().len(), 1);
    assert_eq!(last["first_layer"].as_u64(), Some(layers - 1));
    assert_eq!(last["maps"][0], maps[layers as usize - 1]);
    let (status, error) = ex.post("/api/attention", json!({"prompt": "Hello world", "layer": layers}));
    assert_eq!(status, 400, "{error}");
    let next = ex.ok("/api/next", json!({"prompt": "Hello world", "top_k": 5}));
    assert_eq!(next["kept"], 5);
    assert_eq!(next["vocab_size"], state["model"]["vocab_size"]);
    let tokens = ex.ok("/api/tokens", json!({"text": "Hello world"}));
    let names: Vec<&str> =
        tokens["tokenizers"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"the model's"), "{names:?}");
}

#[test]
fn listening_beyond_this_machine_is_said_out_loud() {
    let dir = Temp::new("explore-host");
    let mut child = spawn(&dir.0.join("runs"), &["--host", "0.0.0.0"]);
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.starts_with("explorer: http://0.0.0.0:"), "{line}");
    let mut warning = String::new();
    BufReader::new(child.stderr.take().unwrap()).read_line(&mut warning).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(warning.starts_with("warning: listening on 0.0.0.0"), "{warning}");
}

#[test]
fn without_model_the_run_in_runs_cpu_small_is_used_when_it_exists() {
    let first = Explorer::start("explore-default-train", &[]);
    first.train(5);
    let dir = Temp::new("explore-default");
    let runs = dir.0.join("runs");
    copy_dir(&first.dir.0.join("runs/explore-tiny"), &runs.join("cpu-small"));
    // A fresh explorer on that runs folder starts with it.
    let mut child = spawn(&runs, &[]);
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap()).read_line(&mut line).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.starts_with("model: ") && line.trim_end().ends_with("cpu-small"), "{line}");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            copy_dir(&path, &to.join(entry.file_name()));
        } else if entry.file_name() != ".lock" {
            std::fs::copy(&path, to.join(entry.file_name())).unwrap();
        }
    }
}
