//! The board, end to end: two real daemons run the breast job, a real headless Chromium opens
//! the guest's board and the test reads its DOM; a job's page follows a running job without a
//! reload; the login token and the CSRF token are required; a read-only board refuses actions.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use consort_tests::board::{cookie_of, meta, request};
use consort_tests::browser::Browser;
use consort_tests::{
    Federation, assert_succeeds, free_port, job_show, submit, task_of, upload_breast_hetero,
    wait_for,
};
use serde_json::Value;

const T: Duration = Duration::from_secs(120);

use consort_tests::BREAST_LR_JOB as TRAIN;

/// Where the test leaves its screenshots: `target/tmp/board/`.
fn output_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("board");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `js` as a condition on the page, checked until it holds.
fn until(page: &mut consort_tests::browser::Page<'_>, what: &str, js: &str) -> Value {
    page.wait_for(js, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

#[test]
fn the_board_shows_the_breast_job_its_dag_charts_and_live_updates() {
    let fed = Federation::init(&["bank-a", "insurer-b"]);
    fed.all_mutual();
    let (board_a, board_b) = (free_port(), free_port());
    // The guest's board acts; the host's is read-only. A gate keeps the second job's task
    // running until the test opens it.
    let gate = PathBuf::from(fed.job_file("gate", "")).with_extension("open");
    let hold = PathBuf::from(fed.job_file("hold", "")).with_extension("open");
    let script = fed.job_file("gate.sh", "while [ ! -e \"$GATE\" ]; do sleep 0.02; done\n");
    for (i, port, read_only) in [(0, board_a, false), (1, board_b, true)] {
        fed.edit_config(i, "# \"*\" = [\"*\"]", "\"*\" = [\"*\"]");
        fed.append_config(
            i,
            &format!(
                "\n[board]\nlisten = \"127.0.0.1:{port}\"\nread_only = {read_only}\n\
                 [operators.gate]\ncommand = [\"sh\", \"{script}\"]\nenv = {{ GATE = \"{}\" }}\n\
                 [operators.hold]\ncommand = [\"sh\", \"{script}\"]\nenv = {{ GATE = \"{}\" }}\n",
                gate.display(),
                hold.display()
            ),
        );
    }
    let _d = fed.start_connected();
    upload_breast_hetero(&fed);
    let (a, b) = (&fed.parties[0], &fed.parties[1]);
    let id = submit(a, &fed.job_file("train.yaml", TRAIN));
    assert_succeeds(&fed.parties, &id, T);

    // `consort board` prints the URL with the token, kept 0600 in the data directory.
    let info = a.cli(&["--json", "board"]).json();
    let url = info["url"].as_str().unwrap().to_owned();
    assert_eq!(info["read_only"], false);
    let token_file = a.dir.join("board.token");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "board.token");
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(url, format!("http://127.0.0.1:{board_a}/?token={token}"));
    let text = a.cli(&["board"]);
    assert_eq!(text.stdout.trim(), url);

    logins_and_csrf_are_required(SocketAddr::from(([127, 0, 0, 1], board_a)), &token, &id, a);
    read_only_refuses_actions(SocketAddr::from(([127, 0, 0, 1], board_b)), b, &id);

    let mut browser = Browser::launch().unwrap();
    let mut page = browser.open(&url).unwrap();
    // The login redirected to the page without the token in its address.
    let here = page.eval("location.href").unwrap();
    assert_eq!(here, format!("http://127.0.0.1:{board_a}/"), "{here}");

    // The jobs list shows the job with success, its initiator and parties.
    let row = format!("#jobs tr[data-job=\"{id}\"]");
    until(
        &mut page,
        "job listed with success",
        &format!("document.querySelector('{row}')?.dataset.status === 'success'"),
    );
    let cells = page
        .eval(&format!(
            "[...document.querySelectorAll('{row} td')].map(td => td.textContent)"
        ))
        .unwrap();
    assert_eq!(cells[1], "breast-lr", "{cells}");
    assert_eq!(cells[3], "bank-a", "{cells}");
    assert!(cells[4].as_str().unwrap().contains("insurer-b"), "{cells}");

    // Filtered by state.
    page.navigate(&format!("http://127.0.0.1:{board_a}/#/jobs?status=failed"))
        .unwrap();
    until(
        &mut page,
        "no failed jobs",
        "document.querySelector('#jobs tbody td.muted')?.textContent === 'no jobs failed'",
    );
    page.navigate(&format!("http://127.0.0.1:{board_a}/#/jobs?status=success"))
        .unwrap();
    until(
        &mut page,
        "the job among the successful ones",
        &format!("document.querySelector('{row}') !== null"),
    );

    // The job's page: the DAG with its 4 tasks and their states at both parties.
    page.navigate(&format!("http://127.0.0.1:{board_a}/#/job/{id}"))
        .unwrap();
    until(
        &mut page,
        "the DAG drawn",
        "document.querySelectorAll('#dag svg rect').length >= 8",
    );
    let dag_texts = page
        .eval("[...document.querySelectorAll('#dag svg text')].map(t => t.textContent.trim())")
        .unwrap();
    let dag_texts: Vec<&str> = dag_texts
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for task in [
        "reader (reader)",
        "psi (psi)",
        "lr (hetero_lr)",
        "eval (evaluation)",
    ] {
        assert!(dag_texts.contains(&task), "{task} in {dag_texts:?}");
    }
    assert_eq!(
        dag_texts.iter().filter(|t| **t == "success").count(),
        4,
        "{dag_texts:?}"
    );
    assert!(
        dag_texts.contains(&"bank-a: success #1  insurer-b: success #1"),
        "{dag_texts:?}"
    );
    let states = page
        .eval(
            "[...document.querySelectorAll('#tasks tbody tr')].map(tr => [tr.dataset.task, \
             [...tr.querySelectorAll('td[data-party]')].map(td => td.dataset.party + '=' + td.dataset.state)])",
        )
        .unwrap();
    let want = serde_json::json!([
        ["reader", ["bank-a=success", "insurer-b=success"]],
        ["psi", ["bank-a=success", "insurer-b=success"]],
        ["lr", ["bank-a=success", "insurer-b=success"]],
        ["eval", ["bank-a=success", "insurer-b="]],
    ]);
    assert_eq!(states, want);

    // The loss chart: 10 points for the guest's 10 iterations; the ROC chart with its AUC.
    let loss = "#charts figure[data-kind=line][data-metric='train/loss'][data-role=guest]";
    let points = until(
        &mut page,
        "loss chart",
        &format!("document.querySelector(\"{loss}\")?.querySelectorAll('svg circle').length"),
    );
    assert_eq!(points, 10, "one marker per iteration");
    let roc = "#charts figure[data-kind=roc][data-task=eval]";
    until(
        &mut page,
        "ROC chart",
        &format!("document.querySelector(\"{roc}\")?.querySelector('svg polyline') !== null"),
    );
    let roc_title = page
        .eval(&format!(
            "[...document.querySelector(\"{roc}\").querySelectorAll('svg text')].map(t => t.textContent).join(' ')"
        ))
        .unwrap();
    let auc: f64 = a
        .cli(&["--json", "metric", "get", &id, "eval", "evaluation", "auc"])
        .json()[0]["points"][0][1]
        .as_f64()
        .unwrap();
    assert!(
        roc_title
            .as_str()
            .unwrap()
            .contains(&format!("AUC {auc:.4}")),
        "{roc_title}"
    );
    for kind in ["ks", "confusion"] {
        until(
            &mut page,
            kind,
            &format!(
                "document.querySelector('#charts figure[data-kind={kind}] svg text') !== null"
            ),
        );
    }
    // Logs: this party's lines are shown.
    until(
        &mut page,
        "logs",
        "document.querySelector('#logs pre')?.textContent.includes('evaluation:')",
    );
    let shot = output_dir().join("job-page.png");
    page.screenshot(&shot).unwrap();
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{}",
        png.len()
    );
    eprintln!("screenshot of the job page: {}", shot.display());

    // A running job's page follows it without a reload: the gated task is seen running, then
    // (after the gate opens) success, by the same page. The job comes from the partner, with
    // markup in a parameter: the page shows it as text.
    let hostile = "<img id=pwn src=x onerror=\\\"window.pwned=1\\\">";
    let gated = submit(
        b,
        &fed.job_file(
            "gated.yaml",
            &format!(
                "name: gated\nparties: {{guest: [bank-a], host: [insurer-b]}}\ntasks:\n  \
                 first: {{component: noop}}\n  nap: {{component: \"script:gate\", depends_on: [first], \
                 params: {{note: \"{hostile}\"}}}}\n"
            ),
        ),
    );
    wait_for("nap running", T, || {
        (task_of(&job_show(a, &gated), "nap")["status"] == "running").then_some(())
    });
    page.navigate(&format!("http://127.0.0.1:{board_a}/#/job/{gated}"))
        .unwrap();
    until(
        &mut page,
        "nap shown running",
        "document.querySelector('#tasks tr[data-task=nap]')?.dataset.status === 'running'",
    );
    page.eval("document.querySelector('#tasks tr[data-task=nap]').click()")
        .unwrap();
    let params = until(
        &mut page,
        "the task's parameters shown",
        "document.querySelector('[data-task-detail=nap] pre')?.textContent",
    );
    assert!(params.as_str().unwrap().contains("<img id=pwn"), "{params}");
    assert_eq!(
        page.eval("document.getElementById('pwn') === null && window.pwned === undefined")
            .unwrap(),
        true,
        "a partner's markup stays text"
    );
    let loaded_at = page.eval("window.consortBoard.loadedAt").unwrap();
    std::fs::write(&gate, "").unwrap();
    until(
        &mut page,
        "nap turns to success on the same page",
        "document.querySelector('#tasks tr[data-task=nap]')?.dataset.status === 'success'",
    );
    assert_eq!(
        page.eval("window.consortBoard.loadedAt").unwrap(),
        loaded_at,
        "the page was not reloaded"
    );
    let seen = page
        .eval("document.querySelector('#tasks tr[data-task=nap]').dataset.seen")
        .unwrap();
    assert_eq!(seen, "running success", "states this page saw");
    assert!(
        page.eval("window.consortBoard.updates").unwrap().as_u64() >= Some(1),
        "updates came by the event stream"
    );
    until(
        &mut page,
        "the job shown as success",
        "document.querySelector('#job')?.dataset.status === 'success'",
    );

    // Stop from the page: the red button asks for a second click, then the job is canceled at
    // every party (the same request as `consort job stop`).
    let held = submit(
        a,
        &fed.job_file(
            "held.yaml",
            "name: held\nparties: {guest: [bank-a], host: [insurer-b]}\ntasks:\n  \
             hold: {component: \"script:hold\"}\n",
        ),
    );
    wait_for("hold running", T, || {
        (task_of(&job_show(a, &held), "hold")["status"] == "running").then_some(())
    });
    page.navigate(&format!("http://127.0.0.1:{board_a}/#/job/{held}"))
        .unwrap();
    until(
        &mut page,
        "hold shown running",
        "document.querySelector('#tasks tr[data-task=hold]')?.dataset.status === 'running'",
    );
    let stop = "document.querySelector('button[data-action=stop]')";
    page.eval(&format!("{stop}.click()")).unwrap();
    assert_eq!(
        page.eval(&format!("{stop}.textContent")).unwrap(),
        "Stop? Click again"
    );
    assert_eq!(
        job_show(a, &held)["status"],
        "running",
        "one click stops nothing"
    );
    page.eval(&format!("{stop}.click()")).unwrap();
    for p in &fed.parties {
        consort_tests::wait_job_state(p, &held, &["canceled"], T);
    }
    until(
        &mut page,
        "the job shown canceled",
        "document.querySelector('#job')?.dataset.status === 'canceled'",
    );
    std::fs::write(&hold, "").unwrap();

    // The partners page: insurer-b connected, directly (loopback).
    page.navigate(&format!("http://127.0.0.1:{board_a}/#/partners"))
        .unwrap();
    until(
        &mut page,
        "partner listed connected, directly",
        "document.querySelector('#partners tr[data-partner=insurer-b]')?.dataset.connected === 'true' \
         && document.querySelector('#partners tr[data-partner=insurer-b] td.route')?.textContent.startsWith('direct — /ip4/127.0.0.1/tcp/')",
    );
}

/// No token: 403 for the page and the API; a wrong token: 403; the token's URL sets a cookie
/// that lets the page and the API in; an action without the page's CSRF token (or with a
/// wrong one) is refused and changes nothing; with it, it goes through the same request as
/// the CLI's.
fn logins_and_csrf_are_required(
    addr: SocketAddr,
    token: &str,
    job: &str,
    a: &consort_tests::Party,
) {
    assert_eq!(request(addr, "GET", "/", &[], "").unwrap().status, 403);
    assert_eq!(
        request(addr, "GET", "/api/jobs", &[], "").unwrap().status,
        403
    );
    let wrong = request(
        addr,
        "GET",
        "/?token=0123456789abcdef0123456789abcdef",
        &[],
        "",
    )
    .unwrap();
    assert_eq!(wrong.status, 403);
    assert!(wrong.header("set-cookie").is_none());
    let bad_cookie = request(
        addr,
        "GET",
        "/api/jobs",
        &[("Cookie", &format!("consort_board_{}=nope", addr.port()))],
        "",
    )
    .unwrap();
    assert_eq!(bad_cookie.status, 403);

    let login = request(addr, "GET", &format!("/?token={token}"), &[], "").unwrap();
    assert_eq!(login.status, 303, "{login:?}");
    assert_eq!(login.header("location"), Some("/"));
    let set = login.header("set-cookie").unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let cookie = cookie_of(&login).unwrap();
    let page = request(addr, "GET", "/", &[("Cookie", &cookie)], "").unwrap();
    assert_eq!(page.status, 200);
    let csrf = meta(&page.body, "csrf").unwrap();
    assert_eq!(csrf.len(), 64);
    assert_ne!(csrf, token, "the CSRF token is not the login token");
    let jobs = request(addr, "GET", "/api/jobs", &[("Cookie", &cookie)], "").unwrap();
    assert_eq!(jobs.status, 200);
    assert!(
        jobs.json()["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["job_id"] == job)
    );
    // The bearer form works too (scripts).
    let bearer = format!("Bearer {token}");
    let by_bearer = request(
        addr,
        "GET",
        "/api/partners",
        &[("Authorization", &bearer)],
        "",
    );
    assert_eq!(by_bearer.unwrap().status, 200);

    // Actions: without the CSRF token, with a wrong one: 403, and the job is untouched.
    let rerun = format!("/api/jobs/{job}/rerun");
    for headers in [
        vec![("Cookie", cookie.as_str())],
        vec![("Cookie", cookie.as_str()), ("X-Consort-Csrf", "0000")],
    ] {
        let r = request(addr, "POST", &rerun, &headers, "{}").unwrap();
        assert_eq!(r.status, 403, "{r:?}");
        assert!(r.body.contains("CSRF"), "{}", r.body);
    }
    let before = job_show(a, job);
    assert_eq!(before["status"], "success");
    assert_eq!(task_of(&before, "lr")["parties"]["bank-a"]["attempt"], 1);
    // With the CSRF token, an action on a job that does not exist is the CLI's own error.
    let r = request(
        addr,
        "POST",
        "/api/jobs/no-such-job/stop",
        &[("Cookie", &cookie), ("X-Consort-Csrf", &csrf)],
        "{}",
    )
    .unwrap();
    assert_eq!(r.status, 404, "{r:?}");
    let cli = a.cli(&["job", "stop", "no-such-job"]);
    assert!(
        cli.stderr.contains(r.json()["error"].as_str().unwrap()),
        "the same message as the CLI's: {} / {}",
        r.body,
        cli.stderr
    );
    // Hostile names are data: a path in a job id is not found, not followed.
    let r = request(
        addr,
        "GET",
        "/api/jobs/..%2F..%2Fetc%2Fpasswd",
        &[("Cookie", &cookie)],
        "",
    )
    .unwrap();
    assert_eq!(r.status, 404, "{r:?}");
}

/// The host's board is read-only: with login and CSRF token, an action is still refused, and
/// its page hides the buttons.
fn read_only_refuses_actions(addr: SocketAddr, b: &consort_tests::Party, job: &str) {
    let info = b.cli(&["--json", "board"]).json();
    assert_eq!(info["read_only"], true);
    let url = info["url"].as_str().unwrap();
    let token = url.split("token=").nth(1).unwrap();
    let login = request(addr, "GET", &format!("/?token={token}"), &[], "").unwrap();
    let cookie = cookie_of(&login).unwrap();
    let page = request(addr, "GET", "/", &[("Cookie", &cookie)], "").unwrap();
    assert_eq!(meta(&page.body, "read-only").as_deref(), Some("true"));
    let csrf = meta(&page.body, "csrf").unwrap();
    let r = request(
        addr,
        "POST",
        &format!("/api/jobs/{job}/stop"),
        &[("Cookie", &cookie), ("X-Consort-Csrf", &csrf)],
        "{}",
    )
    .unwrap();
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.body.contains("read-only"), "{}", r.body);
    assert_eq!(job_show(b, job)["status"], "success");
}
