//! Every operator through the server gives the bytes `dsobel process` gives: the gradients,
//! the unclipped magnitude, the direction, Otsu's threshold and Canny, in PNG, TIFF and NPY,
//! cut into strips on several workers where the operator allows it, on the embedded server,
//! on the distributed system (real RabbitMQ and Redis) and on a Redis Cluster; bad
//! combinations are refused at the door with the option named.

use std::time::Duration;

use dsobel_client::{Cut, ErrorCode, JobResult};
use dsobel_testkit::api::Backend;
use dsobel_testkit::process::{embedded_serve, run_process_with};
use dsobel_testkit::{Need, Servers, Stack, Test, fixture, test_png};

/// The operators sent, as an upload's query (the same names as `dsobel process`'s flags).
const OPERATORS: [&str; 12] = [
    "output=magnitude16",
    "output=magnitude16&ksize=7&format=npy",
    "output=gx&format=npy",
    "output=gy&format=tiff&kernel=scharr",
    "output=gx&ksize=5&format=tiff",
    "output=direction",
    "output=direction&format=npy&ksize=1",
    "output=canny&low=50&high=150",
    "output=canny&ksize=5&magnitude=l1&low=400&high=1200",
    "output=binary&threshold=otsu",
    "output=binary&ksize=7&threshold=30000&format=tiff",
    "output=magnitude&format=npy&magnitude=l1",
];

fn main() -> std::process::ExitCode {
    dsobel_testkit::register_binary(env!("CARGO_BIN_EXE_dsobel"));
    let mut tests = vec![
        Test::new("every_operator_on_the_embedded_server_gives_what_dsobel_process_gives", &[], || {
            let serve = embedded_serve(&[]);
            every_operator_gives_what_dsobel_process_gives(&serve.backend());
        }),
        Test::new("bad_combinations_are_refused_at_the_door_naming_the_option", &[], || {
            bad_combinations_are_refused_naming_the_option(&embedded_serve(&[]).backend());
        }),
    ];
    let distributed: fn() = || {
        let stack = Stack::new(&Servers::shared());
        let _workers = [stack.worker(0), stack.worker(0)];
        let serve = stack.serve(&[]);
        every_operator_gives_what_dsobel_process_gives(&serve.backend());
    };
    tests.push(Test::new(
        "every_operator_distributed_gives_what_dsobel_process_gives",
        &[Need::RabbitMq, Need::Redis],
        distributed,
    ));
    tests.push(Test::new(
        "every_operator_distributed_gives_what_dsobel_process_gives::on_a_redis_cluster",
        &[Need::RabbitMq, Need::RedisCluster],
        move || dsobel_testkit::on_cluster(distributed),
    ));
    dsobel_testkit::run(tests)
}

/// What `dsobel process --strips N` writes for `input` with the options of `query`, and what
/// it said. The strip count is the server's: a PNG's deflate segments follow its strips, so
/// other counts give the same pixels in other bytes (TIFF and NPY are the same bytes anyway).
fn process_locally(input: &[u8], query: &str, strips: u32) -> (Vec<u8>, String) {
    let mut flags = vec!["--strips".to_owned(), strips.to_string()];
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').expect("name=value");
        flags.extend([format!("--{name}"), value.to_owned()]);
    }
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let output = run_process_with(input, &flags);
    let said = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "dsobel process {query}: {said}");
    (output.stdout, said)
}

fn every_operator_gives_what_dsobel_process_gives(backend: &Backend) {
    let (png, _) = test_png(143, 97, 31);
    // A JPEG with restart markers (strips read from its intervals where the kernel reaches
    // one row; decoded and handed out for 5x5 and 7x7), one without, and a PNG.
    let inputs = [
        ("q50-420-restart.jpg", fixture("q50-420-restart.jpg")),
        ("q90-420.jpg", fixture("q90-420.jpg")),
        ("generated.png", png),
    ];
    for (name, input) in &inputs {
        for query in OPERATORS {
            // Three strips asked for: the single-pass operators are cut into them (with the
            // halo their kernel needs); Otsu and Canny run whole and say so.
            let id = backend.submit(input, &format!("?{query}&fragments=3"));
            let status = backend.wait_done(&id, Duration::from_secs(60));
            if status.options.single_pass() {
                assert_eq!(status.strips_total, 3, "{name} {query}: {status:?}");
            } else {
                assert_eq!((status.strips_total, status.cut), (1, Cut::Whole), "{name} {query}");
                assert!(status.notes.iter().any(|n| n.contains("whole-image task")), "{:?}", status.notes);
            }
            let (expected, said) = process_locally(input, query, status.strips_total);
            let JobResult::Ready(file) = backend.result(&id).expect("the result") else {
                panic!("{name} {query}: no result")
            };
            assert!(
                file[..] == expected[..],
                "{name} {query}: the server's file differs from dsobel process's"
            );
            let asked_output = query.split('&').find_map(|p| p.strip_prefix("output=")).expect("an output");
            assert_eq!(status.options.output.as_str(), asked_output, "/status echoes the options");
            let extension = status.options.format.extension();
            let response = backend.http("GET", &format!("/result/{id}"), &[], b"").expect("an answer");
            assert_eq!(response.header("content-type"), Some(status.options.media_type()), "{query}");
            assert!(
                response
                    .header("content-disposition")
                    .is_some_and(|d| d.ends_with(&format!(".{extension}\""))),
                "{query}: {:?}",
                response.header("content-disposition")
            );
            if query.contains("otsu") {
                // `/status` reports the threshold Otsu's method chose, as `dsobel process` says it.
                let chosen = status.threshold_used.expect("the threshold used");
                assert!(said.contains(&format!("otsu threshold {chosen}")), "{said} vs {chosen}");
            }
        }
    }
}

fn bad_combinations_are_refused_naming_the_option(backend: &Backend) {
    let (png, _) = test_png(32, 32, 5);
    let cases = [
        ("output=canny&low=300&high=100", 400, ErrorCode::InvalidOption, "low"),
        ("ksize=4", 400, ErrorCode::InvalidOption, "ksize"),
        ("kernel=scharr&ksize=5", 400, ErrorCode::InvalidOption, "ksize"),
        ("output=gx&format=png", 422, ErrorCode::UnsupportedOutputFormat, "format"),
        ("output=magnitude16&ksize=7&format=png", 422, ErrorCode::UnsupportedOutputFormat, "format"),
        ("threshold=1443", 400, ErrorCode::InvalidOption, "threshold"),
        ("threshold=otsu&output=magnitude", 400, ErrorCode::InvalidOption, "threshold"),
        ("output=laplacian", 400, ErrorCode::InvalidOption, "output"),
    ];
    for (query, status, code, option) in cases {
        let refused = backend.upload(&png, query).expect_err(query);
        assert_eq!((refused.status(), refused.code()), (status, code.as_str()), "{query}: {refused}");
        let message = refused.to_string();
        assert!(message.contains(option), "{query}: the refusal names {option}: {message}");
    }
    // A format that cannot hold the output says which would.
    let refused = backend.upload(&png, "output=gy&format=png").expect_err("refused");
    assert!(refused.to_string().contains("tiff or npy"), "{refused}");
}
