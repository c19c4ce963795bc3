//! Numbers of the stream protocol: command keys, response codes, offset types, as
//! rabbitmq-server's `rabbit_stream.hrl` defines them (3.10, plus what 3.11 to 3.13 added).

/// The most significant bit of a key: set on a response, clear on a request or a
/// one-way command.
pub const RESPONSE_BIT: u16 = 0x8000;

/// Command keys (the 15 low bits of the key field).
pub mod key {
    pub const DECLARE_PUBLISHER: u16 = 0x0001;
    pub const PUBLISH: u16 = 0x0002;
    pub const PUBLISH_CONFIRM: u16 = 0x0003;
    pub const PUBLISH_ERROR: u16 = 0x0004;
    pub const QUERY_PUBLISHER_SEQUENCE: u16 = 0x0005;
    pub const DELETE_PUBLISHER: u16 = 0x0006;
    pub const SUBSCRIBE: u16 = 0x0007;
    pub const DELIVER: u16 = 0x0008;
    pub const CREDIT: u16 = 0x0009;
    pub const STORE_OFFSET: u16 = 0x000a;
    pub const QUERY_OFFSET: u16 = 0x000b;
    pub const UNSUBSCRIBE: u16 = 0x000c;
    pub const CREATE: u16 = 0x000d;
    pub const DELETE: u16 = 0x000e;
    pub const METADATA: u16 = 0x000f;
    pub const METADATA_UPDATE: u16 = 0x0010;
    pub const PEER_PROPERTIES: u16 = 0x0011;
    pub const SASL_HANDSHAKE: u16 = 0x0012;
    pub const SASL_AUTHENTICATE: u16 = 0x0013;
    pub const TUNE: u16 = 0x0014;
    pub const OPEN: u16 = 0x0015;
    pub const CLOSE: u16 = 0x0016;
    pub const HEARTBEAT: u16 = 0x0017;
    /// 3.11+ (super streams).
    pub const ROUTE: u16 = 0x0018;
    /// 3.11+ (super streams).
    pub const PARTITIONS: u16 = 0x0019;
    /// 3.11+ (single active consumer): a server request, answered by the client.
    pub const CONSUMER_UPDATE: u16 = 0x001a;
    /// 3.11+: which versions of each command both sides speak.
    pub const EXCHANGE_COMMAND_VERSIONS: u16 = 0x001b;
    /// 3.11+.
    pub const STREAM_STATS: u16 = 0x001c;
    /// 3.13+: the exchange, partition streams and bindings of a super stream at once.
    pub const CREATE_SUPER_STREAM: u16 = 0x001d;
    /// 3.13+.
    pub const DELETE_SUPER_STREAM: u16 = 0x001e;
}

/// Response codes (`ResponseCode => uint16`).
pub mod code {
    pub const OK: u16 = 0x01;
    pub const STREAM_DOES_NOT_EXIST: u16 = 0x02;
    pub const SUBSCRIPTION_ID_ALREADY_EXISTS: u16 = 0x03;
    pub const SUBSCRIPTION_ID_DOES_NOT_EXIST: u16 = 0x04;
    pub const STREAM_ALREADY_EXISTS: u16 = 0x05;
    pub const STREAM_NOT_AVAILABLE: u16 = 0x06;
    pub const SASL_MECHANISM_NOT_SUPPORTED: u16 = 0x07;
    pub const AUTHENTICATION_FAILURE: u16 = 0x08;
    pub const SASL_ERROR: u16 = 0x09;
    pub const SASL_CHALLENGE: u16 = 0x0a;
    pub const SASL_AUTHENTICATION_FAILURE_LOOPBACK: u16 = 0x0b;
    pub const VIRTUAL_HOST_ACCESS_FAILURE: u16 = 0x0c;
    pub const UNKNOWN_FRAME: u16 = 0x0d;
    pub const FRAME_TOO_LARGE: u16 = 0x0e;
    pub const INTERNAL_ERROR: u16 = 0x0f;
    pub const ACCESS_REFUSED: u16 = 0x10;
    pub const PRECONDITION_FAILED: u16 = 0x11;
    pub const PUBLISHER_DOES_NOT_EXIST: u16 = 0x12;
    pub const NO_OFFSET: u16 = 0x13;
    /// Later RabbitMQ versions (SASL re-authentication).
    pub const SASL_CANNOT_CHANGE_MECHANISM: u16 = 0x14;
    pub const SASL_CANNOT_CHANGE_USERNAME: u16 = 0x15;
}

/// Offset types of an `OffsetSpecification`.
pub mod offset_type {
    /// Only in a ConsumerUpdate response: "no opinion, keep the subscription's".
    pub const NONE: u16 = 0;
    pub const FIRST: u16 = 1;
    pub const LAST: u16 = 2;
    pub const NEXT: u16 = 3;
    pub const OFFSET: u16 = 4;
    pub const TIMESTAMP: u16 = 5;
}

/// Until `open` succeeds a peer may send frames of at most this size (RabbitMQ's
/// `stream.initial_frame_max` default): an unauthenticated peer cannot make the broker
/// buffer a large frame, whatever it asked for in tune.
pub const INITIAL_FRAME_MAX: u32 = 8192;

/// RabbitMQ's default `stream.frame_max` (1 MiB) and heartbeat (60 s).
pub const DEFAULT_FRAME_MAX: u32 = 1_048_576;
pub const DEFAULT_HEARTBEAT: u32 = 60;
