//! Backend replicas and the load of the whole system, end to end on real processes: a replica
//! that dies has its jobs taken over by another (each replica sweeps only its own jobs), and a
//! burst of uploads queues in RabbitMQ instead of being refused while the system has room,
//! up to the queue allowance (`DSOBEL_MAX_QUEUED_JOBS`) the whole system shares.

use std::time::Duration;

use dsobel_client::{ClientError, JobState, Upload};
use dsobel_testkit::{Need, Servers, Stack, Test, test_png, wait_for};

fn main() -> std::process::ExitCode {
    dsobel_testkit::register_binary(env!("CARGO_BIN_EXE_dsobel"));
    let servers = [Need::RabbitMq, Need::Redis];
    dsobel_testkit::run(vec![
        Test::new(
            "a_killed_replicas_jobs_are_taken_over_and_finished_by_another",
            &servers,
            a_killed_replicas_jobs_are_taken_over_and_finished_by_another,
        ),
        Test::new(
            "a_burst_queues_while_the_system_has_room_and_is_refused_past_its_allowance",
            &servers,
            a_burst_queues_while_the_system_has_room_and_is_refused_past_its_allowance,
        ),
    ])
}

fn a_killed_replicas_jobs_are_taken_over_and_finished_by_another() {
    let stack = Stack::new(&Servers::shared());
    let doomed = stack.serve(&[]);
    let survivor = stack.serve(&[]);
    let (a, b) = (doomed.backend(), survivor.backend());
    // Each strip takes a while, so the job is still split and unstitched when its owner dies.
    let _worker = stack.worker(800);
    let (png, luma) = test_png(400, 300, 91);
    let id = a.submit(&png, "?fragments=3");
    wait_for(Duration::from_secs(20), "a strip of the job to be done", || a.status(&id).strips_done >= 1);
    doomed.kill();
    // Only the owner sweeps a job: the survivor finishes it once it sees the owner's heartbeat
    // stop, and counts it as taken over.
    let status = b.wait_job(&id, Duration::from_secs(60));
    assert_eq!(status.state, JobState::Done, "{status:?}");
    b.assert_exact(&id, &luma, 400, 300);
    assert!(b.metric("dsobel_jobs_taken_over_total") >= 1.0, "the survivor took the job over");
    assert_eq!(b.metric("dsobel_stitches_total"), 1.0, "and stitched it once");
}

fn a_burst_queues_while_the_system_has_room_and_is_refused_past_its_allowance() {
    let stack = Stack::new(&Servers::shared());
    // One worker of 50 ms a task: a burst of 100 uploads is far more than it holds at once.
    let _worker = stack.worker(50);
    let roomy = stack.serve(&[]);
    let backend = roomy.backend();
    let (png, luma) = test_png(48, 32, 5);
    let uploads = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..100)
            .map(|_| {
                let (backend, png) = (&backend, &png);
                scope.spawn(move || backend.upload(png, ""))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("an upload thread")).collect::<Vec<_>>()
    });
    // Far more than one job per worker, and more than a backend took before (64): all queued.
    let ids: Vec<_> = uploads
        .into_iter()
        .map(|u| match u {
            Ok(Upload::Accepted(links)) => links.id,
            other => panic!("a burst within the allowance is queued, not refused: {other:?}"),
        })
        .collect();
    for id in &ids {
        assert_eq!(backend.wait_job(id, Duration::from_secs(60)).state, JobState::Done);
    }
    backend.assert_exact(&ids[0], &luma, 48, 32);

    // With an allowance of 10 queued jobs for the whole system, a burst past it is refused.
    let mut stack = Stack::new(&Servers::shared());
    stack.env.push(("DSOBEL_MAX_QUEUED_JOBS".into(), "10".into()));
    let _slow = stack.worker(2000);
    let tight = stack.serve(&[]);
    let backend = tight.backend();
    let answers: Vec<_> = (0..20).map(|_| backend.upload(&png, "")).collect();
    let refused: Vec<_> = answers
        .iter()
        .filter_map(|a| match a {
            Err(ClientError::Api { status: 429, code, .. }) if code == "too-busy" => Some(()),
            _ => None,
        })
        .collect();
    let accepted = answers.iter().filter(|a| matches!(a, Ok(Upload::Accepted(_)))).count();
    assert_eq!(accepted + refused.len(), 20, "{answers:?}");
    // One consuming worker plus ten queued.
    assert_eq!(accepted, 11, "{answers:?}");
}
