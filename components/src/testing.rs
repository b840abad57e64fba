//! Components for testing the machinery: they exercise scheduling, cancellation, failure, the
//! data channel and metrics without any learning.

use std::time::{Duration, Instant};

use consort_protocol::job::Role;

use crate::context::{Target, TaskContext, TaskError};

/// Passes input `data` (if any) through to output `data`.
pub fn noop(ctx: &dyn TaskContext) -> Result<(), TaskError> {
    if let Some(data) = ctx.input("data")? {
        ctx.output("data", &data)?;
    }
    Ok(())
}

/// Sleeps `seconds`, checking for cancellation every 20 ms.
pub fn sleep(ctx: &dyn TaskContext) -> Result<(), TaskError> {
    let total = Duration::from_secs_f64(ctx.param_f64("seconds")?.max(0.0));
    let start = Instant::now();
    while start.elapsed() < total {
        if ctx.is_cancelled() {
            return Err(TaskError::Cancelled);
        }
        std::thread::sleep(Duration::from_millis(20).min(total.saturating_sub(start.elapsed())));
    }
    Ok(())
}

/// Fails with `message`.
pub fn fail(ctx: &dyn TaskContext) -> Result<(), TaskError> {
    let message = ctx
        .params()
        .get("message")
        .and_then(|v| v.as_str())
        .unwrap_or("failed on purpose");
    Err(TaskError::Failed(message.to_owned()))
}

/// Every endpoint sends a token to every other and checks what it receives.
pub fn relay(ctx: &dyn TaskContext) -> Result<(), TaskError> {
    let me = ctx.me().clone();
    for peer in ctx
        .resolve(&Target::Role(Role::Guest))
        .into_iter()
        .chain(ctx.resolve(&Target::Role(Role::Host)))
        .chain(ctx.resolve(&Target::Role(Role::Arbiter)))
    {
        let token = format!("token from {me} to {peer}");
        ctx.remote(&Target::One(peer), "relay", token.as_bytes())?;
    }
    let mut received = 0;
    for role in Role::ALL {
        for (from, data) in ctx.get(&Target::Role(role), "relay")? {
            let expected = format!("token from {from} to {me}");
            if data != expected.as_bytes() {
                return Err(TaskError::Failed(format!(
                    "relay: {from} sent {:?}, expected {expected:?}",
                    String::from_utf8_lossy(&data)
                )));
            }
            received += 1;
        }
    }
    ctx.log(&format!("relay: {received} tokens checked"));
    Ok(())
}

/// Every endpoint contributes `value`; the guests total them, check `expect`, log a metric.
pub fn sum(ctx: &dyn TaskContext) -> Result<(), TaskError> {
    let value = ctx.param_f64("value")?;
    let me = ctx.me().clone();
    if me.role != Role::Guest {
        ctx.remote(&Target::Role(Role::Guest), "sum", &value.to_le_bytes())?;
        return Ok(());
    }
    // Guests also send to each other, so each guest sees every contribution.
    ctx.remote(&Target::Role(Role::Guest), "sum", &value.to_le_bytes())?;
    let mut total = value;
    for role in Role::ALL {
        for (from, data) in ctx.get(&Target::Role(role), "sum")? {
            let bytes: [u8; 8] = data.as_slice().try_into().map_err(|_| {
                TaskError::Failed(format!("sum: {from} sent {} bytes, not 8", data.len()))
            })?;
            total += f64::from_le_bytes(bytes);
        }
    }
    ctx.log(&format!("sum: total {total}"));
    ctx.log_metric("sum", "total", &[(0.0, total)])?;
    if let Some(expect) = ctx.params().get("expect").and_then(|v| v.as_f64())
        && (expect - total).abs() > 1e-9
    {
        return Err(TaskError::Failed(format!(
            "sum: total {total}, expected {expect}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use consort_protocol::job::{JobSpec, PlannedTask, validate};

    use crate::harness::run_task;
    use crate::registry::{component, schema};

    fn plan(task_yaml: &str) -> PlannedTask {
        let text = format!(
            "name: t\nparties:\n  guest: [bank-a]\n  host: [insurer-b, clinic-c]\n  arbiter: [bank-a]\ntasks:\n  t:\n{task_yaml}"
        );
        let spec = JobSpec::parse(&text).expect("parses");
        let mut plan = validate(&spec, &schema).expect("valid");
        plan.tasks.remove(0)
    }

    fn run(task: &PlannedTask) -> Vec<crate::harness::RunResult> {
        let f = component(&task.component).expect("built-in");
        run_task(
            "job-1",
            task,
            f,
            &BTreeMap::new(),
            &Arc::new(AtomicBool::new(false)),
        )
    }

    #[test]
    fn relay_checks_every_token_between_four_endpoints() {
        let results = run(&plan("    component: relay\n"));
        assert_eq!(results.len(), 4, "guest, two hosts, arbiter");
        for r in &results {
            assert_eq!(r.result, Ok(()), "{}", r.endpoint);
            assert_eq!(r.log, vec!["relay: 3 tokens checked".to_owned()]);
        }
    }

    #[test]
    fn sum_totals_at_the_guest_and_checks_expect() {
        let yaml = "    component: sum\n    params: {value: 1}\n    party_params: {insurer-b: {value: 2}, clinic-c: {value: 4}}\n    role_params: {guest: {expect: 8}}\n";
        let results = run(&plan(yaml));
        assert!(results.iter().all(|r| r.result.is_ok()), "{results:?}");
        let guest = results
            .iter()
            .find(|r| r.endpoint.role.as_str() == "guest")
            .expect("guest");
        assert_eq!(
            guest.metrics,
            vec![("sum".into(), "total".into(), vec![(0.0, 8.0)])]
        );

        let wrong =
            "    component: sum\n    params: {value: 1}\n    role_params: {guest: {expect: 5}}\n";
        let results = run(&plan(wrong));
        let guest = results
            .iter()
            .find(|r| r.endpoint.role.as_str() == "guest")
            .expect("guest");
        assert!(
            matches!(&guest.result, Err(e) if e.to_string().contains("expected 5")),
            "{:?}",
            guest.result
        );
    }

    #[test]
    fn fail_fails_with_its_message() {
        let results = run(&plan(
            "    component: fail\n    roles: [host]\n    params: {message: boom}\n",
        ));
        assert_eq!(results.len(), 2);
        assert!(
            results
                .iter()
                .all(|r| r.result == Err(crate::TaskError::Failed("boom".into())))
        );
    }

    #[test]
    fn sleep_stops_promptly_when_cancelled() {
        let task = plan("    component: sleep\n    roles: [guest]\n    params: {seconds: 30}\n");
        let cancel = Arc::new(AtomicBool::new(false));
        let flag = cancel.clone();
        let started = Instant::now();
        let canceller = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            flag.store(true, Ordering::SeqCst);
        });
        let f = component("sleep").expect("built-in");
        let results = run_task("job-1", &task, f, &BTreeMap::new(), &cancel);
        canceller.join().expect("join");
        assert_eq!(results[0].result, Err(crate::TaskError::Cancelled));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn noop_passes_its_input_through() {
        let task = plan("    component: noop\n    roles: [guest]\n");
        let me = crate::Endpoint {
            role: consort_protocol::job::Role::Guest,
            party: consort_protocol::PartyName::new("bank-a").expect("name"),
        };
        let inputs =
            BTreeMap::from([(me, BTreeMap::from([("data".to_owned(), b"rows".to_vec())]))]);
        let f = component("noop").expect("built-in");
        let results = run_task(
            "job-1",
            &task,
            f,
            &inputs,
            &Arc::new(AtomicBool::new(false)),
        );
        assert_eq!(
            results[0].outputs.get("data").map(Vec::as_slice),
            Some(&b"rows"[..])
        );
    }
}
