//! The message provider, composed into inferlets: a multi-turn chat over
//! client messages, pub/sub order and delivery across 8 instances with
//! unsubscribe, and a swarm of agents that find each other on a topic.

use crust::config::Config;
use crust::runtime::{Launch, OutputChunk, OutputSink, Runtime, Stream};
use crust_tests::{inferlet, run_instance, scratch_dir};

use crate::crust;

#[test]
fn chat_keeps_its_context_across_turns() {
    let dir = scratch_dir("messaging-chat");
    let chat = inferlet("chat");
    let run = crust(&["run", chat.to_str().unwrap(), "--send", "What is the capital of France?", "--send", "And of Italy?", "--send", "/exit"], &dir);
    assert_eq!(run.status, Some(0), "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    assert!(lines[0].contains("Paris"), "{}", run.stdout);
    assert!(lines[1].contains("Rome"), "the second turn sees the first: {}", run.stdout);
    assert_eq!(lines[2], "2 turns");
}

fn runtime(name: &str) -> Runtime {
    let dir = scratch_dir(name);
    Runtime::new(&Config { cache_dir: Some(dir.join("cache")), data_dir: Some(dir.join("data")), ..Config::default() }).unwrap()
}

#[test]
fn eight_subscribers_get_every_message_in_order_until_they_unsubscribe() {
    let runtime = runtime("messaging-pubsub");
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let probe = runtime.load_program_file(&inferlet("pubsub-probe")).unwrap();
    tokio.block_on(async {
        let (sink, mut output) = OutputSink::channel();
        let listeners: Vec<_> = (0..8)
            .map(|_| {
                let launch =
                    Launch { arguments: ["listen", "numbers", "100"].map(String::from).to_vec(), output: Some(sink.clone()), ..Launch::default() };
                let (runtime, probe) = (&runtime, &probe);
                async move { runtime.run(probe, launch).await }
            })
            .collect();
        let listeners = futures::future::join_all(listeners);
        let publisher = async {
            // Publish once every listener has subscribed: each says so to its client.
            let mut subscribed = 0;
            let mut stdout = Vec::new();
            while subscribed < 8 {
                let OutputChunk { stream, bytes } = output.recv().await.unwrap();
                match stream {
                    Stream::Message if &bytes[..] == b"subscribed" => subscribed += 1,
                    Stream::Stdout => stdout.extend_from_slice(&bytes),
                    _ => {}
                }
            }
            let publish = run_instance(&runtime, &inferlet("pubsub-probe"), &["publish", "numbers", "150"]).await;
            assert!(publish.outcome.is_ok(), "{:?}", publish.outcome);
            stdout
        };
        let (results, mut stdout) = futures::join!(listeners, publisher);
        for result in results {
            assert!(result.is_ok(), "{result:?}");
        }
        drop(sink);
        while let Some(chunk) = output.recv().await {
            if chunk.stream == Stream::Stdout {
                stdout.extend_from_slice(&chunk.bytes);
            }
        }
        let text = String::from_utf8(stdout).unwrap();
        let expected: Vec<String> = (0..100).map(|i| i.to_string()).collect();
        // Each listener printed its 100 in one write, then the unsubscribe check.
        let blocks: Vec<&str> = text.split("after unsubscribe: ").collect();
        assert_eq!(blocks.len(), 9, "{text}");
        for block in &blocks[..8] {
            let numbers: Vec<&str> = block.lines().filter(|l| l.chars().all(|c| c.is_ascii_digit()) && !l.is_empty()).collect();
            assert_eq!(numbers, expected, "every message, in order");
        }
        assert_eq!(text.matches("after unsubscribe: none").count(), 8, "{text}");
    });
}

#[test]
fn a_swarm_of_agents_collects_every_idea() {
    let runtime = runtime("messaging-swarm");
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let swarm = inferlet("agent-swarm");
    let ids: Vec<String> = (0..4).map(|i| i.to_string()).collect();
    let runs = tokio.block_on(futures::future::join_all(
        ids.iter().map(|id| run_instance(&runtime, &swarm, &["--id", id, "--agents", "4", "--topic", "swarm-test", "--max-tokens", "6"])),
    ));
    let first = &runs[0].stdout;
    for run in &runs {
        assert!(run.outcome.is_ok(), "{:?} {}", run.outcome, run.stderr);
        assert_eq!(&run.stdout, first, "every agent collected the same ideas");
    }
    let lines: Vec<&str> = first.lines().collect();
    assert_eq!(lines.len(), 4, "{first}");
    for (i, line) in lines.iter().enumerate() {
        assert!(line.starts_with(&format!("agent {i}: ")) && line.len() > 10, "{first}");
    }
}

/// What `pubsub-probe listen TOPIC N` run in `listener`'s namespace prints while
/// each of `publishers` (a namespace, and how many to publish) publishes on
/// the same topic, in turn, once it is subscribed.
fn heard_on(name: &str, topic: &str, (listener, n): (&str, usize), publishers: &[(&str, usize)]) -> String {
    let runtime = runtime(name);
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let probe = runtime.load_program_file(&inferlet("pubsub-probe")).unwrap();
    let launch = |namespace: &str, arguments: [&str; 3], output: Option<OutputSink>| Launch {
        arguments: arguments.map(String::from).to_vec(),
        namespace: Some(namespace.to_string()),
        output,
        ..Launch::default()
    };
    tokio.block_on(async {
        let (sink, mut output) = OutputSink::channel();
        let listening = runtime.run(&probe, launch(listener, ["listen", topic, &n.to_string()], Some(sink)));
        let publishing = async {
            while output.recv().await.is_some_and(|chunk| &chunk.bytes[..] != b"subscribed") {}
            for &(namespace, count) in publishers {
                assert!(runtime.run(&probe, launch(namespace, ["publish", topic, &count.to_string()], None)).await.is_ok());
            }
        };
        let (listened, ()) = futures::join!(listening, publishing);
        assert!(listened.is_ok(), "{listened:?}");
        let mut stdout = Vec::new();
        while let Ok(chunk) = output.try_recv() {
            stdout.extend_from_slice(&chunk.bytes);
        }
        String::from_utf8(stdout).unwrap()
    })
}

/// Topics live in namespaces (a server user's, `Launch::namespace`): what
/// bob publishes on `news` never reaches alice's subscription to `news`.
#[test]
fn a_topic_of_one_namespace_is_not_anothers() {
    // Bob's three first: were they delivered, alice would get 0, 1, 2, 0.
    let text = heard_on("messaging-namespaces", "news", ("user/alice", 4), &[("user/bob", 3), ("user/alice", 4)]);
    assert!(text.starts_with("0\n1\n2\n3\n"), "only alice's: {text}");
}

/// A topic under `public/` (`server.shared_prefix`) is every namespace's:
/// alice hears bob's broadcasts on it.
#[test]
fn a_public_topic_is_every_namespaces() {
    let text = heard_on("messaging-public", "public/news", ("user/alice", 4), &[("user/bob", 2), ("user/alice", 2)]);
    assert!(text.starts_with("0\n1\n0\n1\n"), "bob's, then alice's: {text}");
}
