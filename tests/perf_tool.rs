//! warren-perf against an in-process broker: a short throughput run with confirms and acks
//! moves messages end to end and reports them in its JSON line.

mod raw;

use std::process::Command;

#[tokio::test]
async fn throughput_run_reports_messages_moved() {
    let server = raw::broker(|_| {}).await;
    let uri = format!("amqp://guest:guest@{}/%2f", server.local_addr);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_warren-perf"))
            .args([
                "--uri", &uri, "-x", "1", "-y", "1", "-s", "64", "-c", "50", "-a", "10",
            ])
            .args(["-P", "100", "-z", "1", "--json"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = String::from_utf8(out.stdout).unwrap();
    let field = |name: &str| -> u64 {
        let at = json
            .find(&format!("\"{name}\":"))
            .unwrap_or_else(|| panic!("{name} in {json}"));
        json[at + name.len() + 3..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(field("published") > 0, "{json}");
    assert!(field("confirmed") > 0, "{json}");
    assert!(field("consumed") > 0, "{json}");
    assert!(field("confirmed") <= field("published"));
}
