//! The load tool's parts (`warren-perf`): a pipelined client on Warren's own codec.
pub mod client;
