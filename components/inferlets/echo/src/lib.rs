//! `echo`: answers its client, for exercising a client link end to end.
//! Each message comes back as `echo: <message>`; the message `blob` asks for
//! the next blob, which comes back reversed; `/exit` (or the client going
//! away) ends it, returning how much it echoed.

use crust_sdk::io;

async fn run() -> Result<(), String> {
    let (mut messages, mut blobs) = (0, 0);
    loop {
        let message = io::receive().await;
        match message.as_str() {
            "" | "/exit" => break,
            "blob" => {
                let Some(mut blob) = io::receive_blob().await else { break };
                blob.reverse();
                io::send_blob(&blob);
                blobs += 1;
            }
            text => {
                io::send(&format!("echo: {text}"));
                messages += 1;
            }
        }
    }
    crust_sdk::runtime::set_return(&format!("echoed {messages} messages and {blobs} blobs"));
    Ok(())
}

crust_sdk::entry!(async run);
