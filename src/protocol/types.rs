//! AMQP string types. Both keep the bytes they were decoded from (a slice of the frame), so
//! decoding a method allocates nothing; neither is required to be UTF-8 on the wire.

macro_rules! string_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub ::bytes::Bytes);

        impl $name {
            /// Wraps a static string without copying it.
            pub const fn from_static(s: &'static str) -> Self {
                Self(::bytes::Bytes::from_static(s.as_bytes()))
            }
            pub fn as_bytes(&self) -> &[u8] {
                &self.0
            }
            /// The text, if it is UTF-8.
            pub fn as_str(&self) -> Option<&str> {
                std::str::from_utf8(&self.0).ok()
            }
            /// The text with invalid UTF-8 replaced, for logs and error messages.
            pub fn to_string_lossy(&self) -> std::borrow::Cow<'_, str> {
                String::from_utf8_lossy(&self.0)
            }
            pub fn len(&self) -> usize {
                self.0.len()
            }
            pub fn is_empty(&self) -> bool {
                self.0.is_empty()
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                ::std::fmt::Debug::fmt(&*self.to_string_lossy(), f)
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.to_string_lossy())
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(::bytes::Bytes::copy_from_slice(s.as_bytes()))
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(::bytes::Bytes::from(s))
            }
        }

        impl From<::bytes::Bytes> for $name {
            fn from(b: ::bytes::Bytes) -> Self {
                Self(b)
            }
        }

        impl ::std::borrow::Borrow<[u8]> for $name {
            fn borrow(&self) -> &[u8] {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                &self.0[..] == other.as_bytes()
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                &self.0[..] == other.as_bytes()
            }
        }
    };
}
/// Also used by the stream protocol's string type (`protocol::stream::Str`).
pub(crate) use string_type;

string_type!(
    /// `shortstr`: at most 255 octets. Longer values are cut to 255 octets when encoded,
    /// so whoever builds one from user input must check the length first.
    ShortStr
);
string_type!(
    /// `longstr`: up to 2^32-1 octets of opaque data.
    LongStr
);
