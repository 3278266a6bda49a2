//! The wire format of `crust serve`: one msgpack map per binary WebSocket
//! frame, with a `type` field. The first group of messages is Pie's client
//! protocol (what PyPI's `pie-client` 0.1.0 speaks), unchanged; Crust's
//! additions follow, and a server sends them only to clients that ask
//! (`hello`, or a request of their own).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Uploads and downloads travel in chunks of at most this many bytes.
pub const CHUNK_SIZE: usize = 256 * 1024;

/// The version of Crust's additions, exchanged in `hello`.
pub const PROTOCOL_VERSION: u32 = 1;

/// What a client signs to prove it holds a key: this prefix, then the nonce.
pub const CHALLENGE_PREFIX: &[u8] = b"crust-auth-v1:";

/// `query` subjects.
pub mod subject {
    /// Record: a BLAKE3 hex hash. Result: `"true"` or `"false"`.
    pub const PROGRAM_EXISTS: &str = "program_exists";
    /// Result: the server's name and version.
    pub const VERSION: &str = "version";
    /// Result: JSON, the models with their metadata.
    pub const MODELS: &str = "models";
    /// Result: JSON, per model: passes, tokens, batches, KV pages in use and free.
    pub const MODEL_STATUS: &str = "model_status";
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    Authenticate {
        corr_id: u32,
        token: String,
    },
    Query {
        corr_id: u32,
        subject: String,
        record: String,
    },
    UploadProgram {
        corr_id: u32,
        program_hash: String,
        chunk_index: usize,
        total_chunks: usize,
        #[serde(with = "serde_bytes")]
        chunk_data: Vec<u8>,
    },
    UploadBlob {
        corr_id: u32,
        instance_id: String,
        blob_hash: String,
        chunk_index: usize,
        total_chunks: usize,
        #[serde(with = "serde_bytes")]
        chunk_data: Vec<u8>,
    },
    LaunchInstance {
        corr_id: u32,
        program_hash: String,
        #[serde(default)]
        arguments: Vec<String>,
        /// Crust: keep running when this connection closes (Pie's clients
        /// never set it: their instances end with their connection).
        #[serde(default)]
        detached: bool,
        /// Crust: what listings and logs call the program besides its hash
        /// (`crust submit` sends the file's name); at most 128 characters.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    LaunchServerInstance {
        corr_id: u32,
        port: u32,
        program_hash: String,
        #[serde(default)]
        arguments: Vec<String>,
    },
    /// A message for the instance's `message.receive`.
    SignalInstance {
        instance_id: String,
        message: String,
    },
    TerminateInstance {
        instance_id: String,
    },

    // Crust's additions.
    /// Says the client speaks Crust's additions; the result is the server's
    /// version as JSON (`{"protocol": 1, "server": "crust 0.1.0"}`).
    Hello {
        corr_id: u32,
        protocol: u32,
    },
    /// Asks for a nonce to sign with `user`'s key; the result is the nonce, hex.
    Challenge {
        corr_id: u32,
        user: String,
    },
    /// The ed25519 signature of `CHALLENGE_PREFIX ++ nonce`.
    Prove {
        corr_id: u32,
        user: String,
        #[serde(with = "serde_bytes")]
        signature: Vec<u8>,
    },
    /// Launches a program the server pulls from an OCI registry.
    LaunchReference {
        corr_id: u32,
        reference: String,
        #[serde(default)]
        arguments: Vec<String>,
        #[serde(default)]
        detached: bool,
    },
    /// Takes over an instance's events: what was buffered while detached
    /// comes first, then the rest as it happens.
    AttachInstance {
        corr_id: u32,
        instance_id: String,
    },
    /// Lets an instance run on without this connection, buffering its events.
    DetachInstance {
        corr_id: u32,
        instance_id: String,
    },
    /// The result is JSON: a list of [`InstanceInfo`] for this user.
    ListInstances {
        corr_id: u32,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Response {
        corr_id: u32,
        successful: bool,
        result: String,
    },
    InstanceEvent {
        instance_id: String,
        event: EventCode,
        message: String,
    },
    /// One chunk of a blob the instance sent (`message.send-blob`).
    DownloadBlob {
        instance_id: String,
        blob_hash: String,
        chunk_index: usize,
        total_chunks: usize,
        #[serde(with = "serde_bytes")]
        chunk_data: Vec<u8>,
    },
    ServerEvent {
        message: String,
    },

    // Crust's additions.
    /// Bytes the instance wrote to stdout or stderr.
    InstanceOutput {
        instance_id: String,
        stream: OutputStream,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
}

impl ServerMessage {
    /// Whether a Pie client (one that never said `hello`) may be sent it.
    pub fn is_pie(&self) -> bool {
        !matches!(self, ServerMessage::InstanceOutput { .. })
    }

    pub fn instance_id(&self) -> Option<&str> {
        match self {
            ServerMessage::InstanceEvent { instance_id, .. }
            | ServerMessage::DownloadBlob { instance_id, .. }
            | ServerMessage::InstanceOutput { instance_id, .. } => Some(instance_id),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// Pie's instance event codes; every code but `Message` ends the instance,
/// and each instance gets exactly one of those.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventCode {
    /// `message.send`: the text is the message.
    Message = 0,
    /// The text is the return value (`runtime.set-return`), or empty.
    Completed = 1,
    /// Terminated by its client, or the server shut down.
    Aborted = 2,
    /// The inferlet failed (an `Err`, a trap); the text says why.
    Exception = 3,
    ServerError = 4,
    /// A limit ended it (wall time, memory, output buffer); the text names it.
    OutOfResources = 5,
}

impl EventCode {
    pub fn is_terminal(self) -> bool {
        self != EventCode::Message
    }

    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => Self::Message,
            1 => Self::Completed,
            2 => Self::Aborted,
            3 => Self::Exception,
            4 => Self::ServerError,
            5 => Self::OutOfResources,
            _ => return None,
        })
    }
}

// Pie's clients read the code as an integer.
impl Serialize for EventCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u8(*self as u8)
    }
}

impl<'de> Deserialize<'de> for EventCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = u8::deserialize(deserializer)?;
        Self::from_code(code).ok_or_else(|| serde::de::Error::custom(format!("unknown event code {code}")))
    }
}

/// One row of `list_instances`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InstanceInfo {
    pub id: String,
    /// `running`, or how it ended: `completed`, `aborted`, `exception`,
    /// `server_error`, `out_of_resources` (kept until a client collects it).
    pub state: String,
    pub owner: String,
    pub age_secs: f64,
    pub program: String,
    /// The name the launch gave the program (a file name), if any.
    #[serde(default)]
    pub name: Option<String>,
    pub arguments: Vec<String>,
    /// Whether a connection receives its events now.
    pub attached: bool,
}

/// Encodes a message as the server and clients send it: a msgpack map.
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(message).expect("protocol messages always encode")
}

/// The BLAKE3 hex hash that names programs and blobs.
pub fn content_hash(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// Splits `bytes` into upload chunks; an empty payload is one empty chunk.
pub fn chunks(bytes: &[u8]) -> Vec<&[u8]> {
    if bytes.is_empty() { vec![&[][..]] } else { bytes.chunks(CHUNK_SIZE).collect() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_codes_travel_as_integers() {
        let message = ServerMessage::InstanceEvent { instance_id: "i".into(), event: EventCode::Completed, message: "ok".into() };
        let decoded: ServerMessage = rmp_serde::from_slice(&encode(&message)).unwrap();
        assert!(matches!(decoded, ServerMessage::InstanceEvent { event: EventCode::Completed, .. }));
        // The map's `event` value is the positive fixint 1.
        let bytes = encode(&message);
        let at = bytes.windows(5).rposition(|w| w == b"event").unwrap();
        assert_eq!(bytes[at + 5], 1);
    }

    #[test]
    fn pie_fields_default_when_absent() {
        #[derive(Serialize)]
        struct PieLaunch {
            r#type: &'static str,
            corr_id: u32,
            program_hash: &'static str,
        }
        let bytes = encode(&PieLaunch { r#type: "launch_instance", corr_id: 7, program_hash: "abc" });
        let decoded: ClientMessage = rmp_serde::from_slice(&bytes).unwrap();
        assert!(matches!(decoded, ClientMessage::LaunchInstance { corr_id: 7, detached: false, ref arguments, .. } if arguments.is_empty()));
    }

    #[test]
    fn empty_payload_is_one_chunk() {
        assert_eq!(chunks(&[]).len(), 1);
        assert_eq!(chunks(&vec![0; CHUNK_SIZE + 1]).len(), 2);
    }
}
