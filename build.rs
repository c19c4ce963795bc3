//! Generates Warren's AMQP 0-9-1 types from `amqp-spec/amqp-0-9-1.toml`.
//!
//! Output (`$OUT_DIR/amqp_generated.rs`, included by `src/protocol/generated.rs`):
//! - `reply_code` constants and their names and scopes (soft = channel, hard = connection);
//! - one struct per method with its `CLASS_ID`, `METHOD_ID`, `NAME`, a nom decoder and an encoder;
//! - the `Method` enum, dispatched on (class id, method id);
//! - `BasicProperties` with its property flags.
//!
//! Nothing per method is written by hand: change the spec file, not the generated code.

use serde::Deserialize;
use std::fmt::Write as _;
use std::path::PathBuf;

const SPEC: &str = "amqp-spec/amqp-0-9-1.toml";

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Spec {
    protocol: Protocol,
    frame_types: FrameTypes,
    constants: Constants,
    class: Vec<Class>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Protocol {
    major: u8,
    minor: u8,
    revision: u8,
    port: u16,
    frame_min_size: u32,
    frame_end: u8,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FrameTypes {
    method: u8,
    header: u8,
    body: u8,
    heartbeat: u8,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Constants {
    reply_codes: Vec<ReplyCode>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplyCode {
    name: String,
    code: u16,
    scope: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Class {
    name: String,
    id: u16,
    #[serde(default)]
    properties: Vec<Field>,
    method: Vec<MethodSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MethodSpec {
    name: String,
    id: u16,
    sender: String,
    #[serde(default)]
    reply: Option<Vec<String>>,
    #[serde(default)]
    content: bool,
    fields: Vec<Field>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Field {
    name: String,
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    #[allow(dead_code)]
    domain: Option<String>,
    #[serde(default)]
    reserved: bool,
}

fn camel(s: &str) -> String {
    s.split(['-', '_'])
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

fn snake(s: &str) -> String {
    let s = s.replace('-', "_");
    match s.as_str() {
        "type" => "kind".to_string(),
        _ => s,
    }
}

fn rust_type(ty: &str) -> &'static str {
    match ty {
        "bit" => "bool",
        "octet" => "u8",
        "short" => "u16",
        "long" => "u32",
        "longlong" | "timestamp" => "u64",
        "shortstr" => "ShortStr",
        "longstr" => "LongStr",
        "table" => "FieldTable",
        other => panic!("{SPEC}: unknown field type {other}"),
    }
}

/// nom parser expression for one non-bit field type.
fn parser(ty: &str) -> &'static str {
    match ty {
        "octet" => "be_u8(i)",
        "short" => "be_u16(i)",
        "long" => "be_u32(i)",
        "longlong" | "timestamp" => "be_u64(i)",
        "shortstr" => "short_str(i, src)",
        "longstr" => "long_str(i, src)",
        "table" => "field_table(i, src, 0)",
        other => panic!("{SPEC}: no parser for {other}"),
    }
}

/// Encoder statement for one non-bit field type, `v` being an expression of the value.
fn encoder(ty: &str, v: &str) -> String {
    match ty {
        "octet" => format!("buf.put_u8({v});"),
        "short" => format!("buf.put_u16({v});"),
        "long" => format!("buf.put_u32({v});"),
        "longlong" | "timestamp" => format!("buf.put_u64({v});"),
        "shortstr" => format!("put_short_str(buf, &{v});"),
        "longstr" => format!("put_long_str(buf, &{v});"),
        "table" => format!("put_field_table(buf, &{v});"),
        other => panic!("{SPEC}: no encoder for {other}"),
    }
}

/// Encoded value of a reserved field (always zero or empty).
fn reserved_encoder(ty: &str) -> &'static str {
    match ty {
        "bit" => "",
        "octet" | "shortstr" => "buf.put_u8(0);",
        "short" => "buf.put_u16(0);",
        "long" | "longstr" | "table" => "buf.put_u32(0);",
        "longlong" | "timestamp" => "buf.put_u64(0);",
        other => panic!("{SPEC}: no reserved encoder for {other}"),
    }
}

/// Groups consecutive bit fields: returns, per field, Some((group index, bit position)).
fn bit_positions(fields: &[Field]) -> Vec<Option<(usize, u8)>> {
    let mut out = Vec::new();
    let mut group = 0usize;
    let mut pos: Option<u8> = None;
    for f in fields {
        if f.ty == "bit" {
            let p = match pos {
                Some(p) if p < 7 => p + 1,
                Some(_) => {
                    group += 1;
                    0
                }
                None => 0,
            };
            pos = Some(p);
            out.push(Some((group, p)));
        } else {
            if pos.is_some() {
                group += 1;
            }
            pos = None;
            out.push(None);
        }
    }
    out
}

fn gen_method(out: &mut String, class: &Class, m: &MethodSpec) {
    let sname = format!("{}{}", camel(&class.name), camel(&m.name));
    let full = format!("{}.{}", class.name, m.name);
    let bits = bit_positions(&m.fields);
    let visible: Vec<&Field> = m.fields.iter().filter(|f| !f.reserved).collect();

    writeln!(
        out,
        "/// `{full}` ({}/{}), sent by the {}.",
        class.id, m.id, m.sender
    )
    .unwrap();
    if let Some(r) = &m.reply {
        writeln!(out, "/// Synchronous; answered by {}.", r.join(", ")).unwrap();
    }
    if m.content {
        writeln!(out, "/// Followed by a content header and body frames.").unwrap();
    }
    writeln!(out, "#[derive(Debug, Clone, PartialEq, Default)]").unwrap();
    writeln!(out, "pub struct {sname} {{").unwrap();
    for f in &visible {
        writeln!(out, "    pub {}: {},", snake(&f.name), rust_type(&f.ty)).unwrap();
    }
    writeln!(out, "}}\n").unwrap();

    writeln!(out, "impl {sname} {{").unwrap();
    writeln!(out, "    pub const CLASS_ID: u16 = {};", class.id).unwrap();
    writeln!(out, "    pub const METHOD_ID: u16 = {};", m.id).unwrap();
    writeln!(out, "    pub const NAME: &'static str = \"{full}\";").unwrap();

    // decoder
    // Content methods are decoded on the hot path (basic.publish, basic.deliver): inlined
    // there so that the method is built where it ends up.
    let inline = if m.content {
        "#[inline(always)]"
    } else {
        "#[inline]"
    };
    writeln!(
        out,
        "    #[allow(unused_variables, unused_mut)]\n    {inline}"
    )
    .unwrap();
    writeln!(
        out,
        "    fn decode_fields<'a>(i: &'a [u8], src: &Bytes) -> WireResult<'a, Self> {{"
    )
    .unwrap();
    let mut last_group: Option<usize> = None;
    for (f, b) in m.fields.iter().zip(&bits) {
        match b {
            Some((g, _)) => {
                if last_group != Some(*g) {
                    writeln!(out, "        let (i, bits{g}) = be_u8(i)?;").unwrap();
                    last_group = Some(*g);
                }
            }
            None => {
                let var = if f.reserved {
                    "_".to_string()
                } else {
                    snake(&f.name)
                };
                writeln!(out, "        let (i, {var}) = {}?;", parser(&f.ty)).unwrap();
            }
        }
    }
    writeln!(out, "        Ok((i, Self {{").unwrap();
    for (f, b) in m.fields.iter().zip(&bits) {
        if f.reserved {
            continue;
        }
        match b {
            Some((g, p)) => writeln!(
                out,
                "            {}: bits{g} & (1 << {p}) != 0,",
                snake(&f.name)
            )
            .unwrap(),
            None => writeln!(out, "            {},", snake(&f.name)).unwrap(),
        }
    }
    writeln!(out, "        }}))\n    }}").unwrap();

    // encoder
    writeln!(out, "    #[allow(unused_variables)]").unwrap();
    writeln!(out, "    fn encode_fields(&self, buf: &mut BytesMut) {{").unwrap();
    let mut i = 0;
    while i < m.fields.len() {
        let f = &m.fields[i];
        if let Some((g, _)) = bits[i] {
            let mut terms = Vec::new();
            while i < m.fields.len() && matches!(bits[i], Some((gg, _)) if gg == g) {
                let (_, p) = bits[i].unwrap();
                if !m.fields[i].reserved {
                    terms.push(format!(
                        "u8::from(self.{}) << {p}",
                        snake(&m.fields[i].name)
                    ));
                }
                i += 1;
            }
            if terms.is_empty() {
                terms.push("0".into());
            }
            writeln!(out, "        buf.put_u8({});", terms.join(" | ")).unwrap();
            continue;
        }
        if f.reserved {
            writeln!(out, "        {}", reserved_encoder(&f.ty)).unwrap();
        } else {
            let v = format!("self.{}", snake(&f.name));
            writeln!(out, "        {}", encoder(&f.ty, &v)).unwrap();
        }
        i += 1;
    }
    writeln!(out, "    }}\n}}\n").unwrap();

    writeln!(
        out,
        "impl From<{sname}> for Method {{ fn from(m: {sname}) -> Method {{ Method::{sname}(m) }} }}\n"
    )
    .unwrap();
}

fn gen_properties(out: &mut String, class: &Class) {
    let props = &class.properties;
    assert!(
        props.len() <= 15,
        "more than 15 properties need flag continuation"
    );
    writeln!(
        out,
        "/// Content properties of the `{}` class, each present only when its flag bit is set.",
        class.name
    )
    .unwrap();
    writeln!(out, "#[derive(Debug, Clone, PartialEq, Default)]").unwrap();
    writeln!(out, "pub struct {}Properties {{", camel(&class.name)).unwrap();
    for p in props {
        writeln!(
            out,
            "    pub {}: Option<{}>,",
            snake(&p.name),
            rust_type(&p.ty)
        )
        .unwrap();
    }
    writeln!(out, "}}\n").unwrap();
    writeln!(out, "impl {}Properties {{", camel(&class.name)).unwrap();
    writeln!(
        out,
        "    /// Property flags word: bit 15 for the first property, downwards."
    )
    .unwrap();
    writeln!(
        out,
        "    pub fn flags(&self) -> u16 {{\n        let mut f = 0u16;"
    )
    .unwrap();
    for (n, p) in props.iter().enumerate() {
        writeln!(
            out,
            "        if self.{}.is_some() {{ f |= 1 << {}; }}",
            snake(&p.name),
            15 - n
        )
        .unwrap();
    }
    writeln!(out, "        f\n    }}").unwrap();
    writeln!(
        out,
        "    /// Encodes the flags word and the present properties."
    )
    .unwrap();
    writeln!(out, "    pub fn encode(&self, buf: &mut BytesMut) {{").unwrap();
    writeln!(out, "        buf.put_u16(self.flags());").unwrap();
    for p in props {
        let v = "*v".to_string();
        let stmt = match p.ty.as_str() {
            "shortstr" | "longstr" | "table" => encoder(&p.ty, "v").replace("&v", "v"),
            _ => encoder(&p.ty, &v),
        };
        writeln!(
            out,
            "        if let Some(v) = &self.{} {{ {stmt} }}",
            snake(&p.name)
        )
        .unwrap();
    }
    writeln!(out, "    }}").unwrap();
    writeln!(
        out,
        "    /// Decodes a flags word (and any continuation words) and the properties it announces."
    )
    .unwrap();
    writeln!(
        out,
        "    pub fn decode<'a>(i: &'a [u8], src: &Bytes) -> WireResult<'a, Self> {{"
    )
    .unwrap();
    writeln!(out, "        let (mut i, flags) = property_flags(i)?;").unwrap();
    writeln!(out, "        let mut p = Self::default();").unwrap();
    for (n, p) in props.iter().enumerate() {
        writeln!(
            out,
            "        if flags & (1 << {}) != 0 {{ let (rest, v) = {}?; i = rest; p.{} = Some(v); }}",
            15 - n,
            parser(&p.ty),
            snake(&p.name)
        )
        .unwrap();
    }
    writeln!(out, "        Ok((i, p))\n    }}\n}}\n").unwrap();

    // Encoded properties: structure check and per-property accessors that read straight
    // from the wire octets, so a broker forwards properties without decoding them.
    let skip = |ty: &str| match ty {
        "octet" => "skip(i, 1)",
        "short" => "skip(i, 2)",
        "long" => "skip(i, 4)",
        "longlong" | "timestamp" => "skip(i, 8)",
        "shortstr" => "skip_short_str(i)",
        "longstr" => "skip_long_str(i)",
        "table" => "check_field_table(i, 0)",
        other => panic!("{SPEC}: no skipper for {other}"),
    };
    writeln!(out, "impl EncodedProperties {{").unwrap();
    writeln!(
        out,
        "    /// Walks encoded properties without building them; fails as decoding would.\n    #[inline]\n    pub(crate) fn check(i: &[u8]) -> WireResult<'_, ()> {{\n        let (i, flags) = property_flags(i)?;"
    )
    .unwrap();
    for (n, p) in props.iter().enumerate() {
        writeln!(
            out,
            "        let (i, _) = if flags & (1 << {}) != 0 {{ {}? }} else {{ (i, ()) }};",
            15 - n,
            skip(&p.ty)
        )
        .unwrap();
    }
    writeln!(out, "        Ok((i, ()))\n    }}").unwrap();
    for (k, p) in props.iter().enumerate() {
        writeln!(
            out,
            "    /// The `{}` property, read from the encoded octets.\n    pub fn {}(&self) -> Option<{}> {{\n        let src = &self.0;\n        let (i, flags) = property_flags(src).ok()?;\n        if flags & (1 << {}) == 0 {{ return None; }}",
            p.name,
            snake(&p.name),
            rust_type(&p.ty),
            15 - k
        )
        .unwrap();
        for (n, q) in props.iter().enumerate().take(k) {
            writeln!(
                out,
                "        let (i, _) = if flags & (1 << {}) != 0 {{ {}.ok()? }} else {{ (i, ()) }};",
                15 - n,
                skip(&q.ty)
            )
            .unwrap();
        }
        writeln!(
            out,
            "        let r: WireResult<'_, {}> = {};\n        r.ok().map(|(_, v)| v)\n    }}",
            rust_type(&p.ty),
            parser(&p.ty)
        )
        .unwrap();
    }
    writeln!(out, "}}\n").unwrap();
}

/// Proptest strategies for every method and for the properties, used by the codec's
/// round-trip tests (`src/protocol/tests.rs`); generated so that no method is forgotten.
fn gen_strategies(spec: &Spec) -> String {
    let mut out = String::new();
    writeln!(out, "// @generated by build.rs from {SPEC}. Do not edit.\n").unwrap();
    let strat = |ty: &str| match ty {
        "bit" => "any::<bool>()",
        "octet" => "any::<u8>()",
        "short" => "any::<u16>()",
        "long" => "any::<u32>()",
        "longlong" | "timestamp" => "any::<u64>()",
        "shortstr" => "short_str()",
        "longstr" => "long_str()",
        "table" => "field_table()",
        other => panic!("{SPEC}: no strategy for {other}"),
    };
    // Tuples of at most 6 strategies, nested, to stay within proptest's tuple impls.
    let tuple = |fields: &[&Field]| -> (String, String) {
        let chunks: Vec<&[&Field]> = fields.chunks(6).collect();
        let s = chunks
            .iter()
            .map(|c| {
                format!(
                    "({},)",
                    c.iter()
                        .map(|f| strat(&f.ty))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let p = chunks
            .iter()
            .map(|c| {
                format!(
                    "({},)",
                    c.iter()
                        .map(|f| snake(&f.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        (format!("({s},)"), format!("({p},)"))
    };
    for (name, content_only) in [("any_method", false), ("any_content_method", true)] {
        writeln!(
            out,
            "pub fn {name}() -> BoxedStrategy<Method> {{\n    Union::new(vec!["
        )
        .unwrap();
        for c in &spec.class {
            for m in c.method.iter().filter(|m| m.content || !content_only) {
                let n = format!("{}{}", camel(&c.name), camel(&m.name));
                let visible: Vec<&Field> = m.fields.iter().filter(|f| !f.reserved).collect();
                if visible.is_empty() {
                    writeln!(out, "        Just(Method::{n}({n} {{}})).boxed(),").unwrap();
                    continue;
                }
                let (s, p) = tuple(&visible);
                let names = visible
                    .iter()
                    .map(|f| snake(&f.name))
                    .collect::<Vec<_>>()
                    .join(", ");
                writeln!(
                    out,
                    "        {s}.prop_map(|{p}| Method::{n}({n} {{ {names} }})).boxed(),"
                )
                .unwrap();
            }
        }
        writeln!(out, "    ]).boxed()\n}}\n").unwrap();
    }
    for c in spec.class.iter().filter(|c| !c.properties.is_empty()) {
        let n = format!("{}Properties", camel(&c.name));
        let fields: Vec<&Field> = c.properties.iter().collect();
        let chunks: Vec<&[&Field]> = fields.chunks(6).collect();
        let s = chunks
            .iter()
            .map(|c| {
                format!(
                    "({},)",
                    c.iter()
                        .map(|f| format!("proptest::option::of({})", strat(&f.ty)))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let (_, p) = tuple(&fields);
        let names = fields
            .iter()
            .map(|f| snake(&f.name))
            .collect::<Vec<_>>()
            .join(", ");
        writeln!(out, "pub fn any_{}_properties() -> BoxedStrategy<{n}> {{\n    ({s},).prop_map(|{p}| {n} {{ {names} }}).boxed()\n}}", c.name).unwrap();
    }
    out
}

fn main() {
    println!("cargo:rerun-if-changed={SPEC}");
    println!("cargo:rerun-if-changed=build.rs");
    let text = std::fs::read_to_string(SPEC).expect("read amqp-spec");
    let spec: Spec = toml::from_str(&text).unwrap_or_else(|e| panic!("{SPEC}: {e}"));
    let mut out = String::new();
    let p = &spec.protocol;
    writeln!(out, "// @generated by build.rs from {SPEC}. Do not edit.\n").unwrap();
    writeln!(
        out,
        "/// The protocol header a 0-9-1 peer sends first.\npub const PROTOCOL_HEADER: [u8; 8] = *b\"AMQP\\x00\\x{:02x}\\x{:02x}\\x{:02x}\";",
        p.major, p.minor, p.revision
    )
    .unwrap();
    writeln!(out, "pub const DEFAULT_PORT: u16 = {};", p.port).unwrap();
    writeln!(out, "pub const FRAME_MIN_SIZE: u32 = {};", p.frame_min_size).unwrap();
    writeln!(out, "pub const FRAME_END: u8 = {};", p.frame_end).unwrap();
    let ft = &spec.frame_types;
    writeln!(out, "pub const FRAME_METHOD: u8 = {};", ft.method).unwrap();
    writeln!(out, "pub const FRAME_HEADER: u8 = {};", ft.header).unwrap();
    writeln!(out, "pub const FRAME_BODY: u8 = {};", ft.body).unwrap();
    writeln!(out, "pub const FRAME_HEARTBEAT: u8 = {};\n", ft.heartbeat).unwrap();

    // reply codes
    writeln!(
        out,
        "/// Reply codes, as `reply-code` of connection.close and channel.close."
    )
    .unwrap();
    writeln!(out, "pub mod reply_code {{").unwrap();
    for rc in &spec.constants.reply_codes {
        writeln!(
            out,
            "    pub const {}: u16 = {};",
            rc.name.replace('-', "_").to_uppercase(),
            rc.code
        )
        .unwrap();
    }
    writeln!(out, "}}\n").unwrap();
    writeln!(
        out,
        "/// RabbitMQ's name for a reply code (`NOT_FOUND`), or `None` for unknown codes."
    )
    .unwrap();
    writeln!(
        out,
        "pub fn reply_code_name(code: u16) -> Option<&'static str> {{\n    match code {{"
    )
    .unwrap();
    for rc in &spec.constants.reply_codes {
        writeln!(
            out,
            "        {} => Some(\"{}\"),",
            rc.code,
            rc.name.replace('-', "_").to_uppercase()
        )
        .unwrap();
    }
    writeln!(out, "        _ => None,\n    }}\n}}\n").unwrap();
    writeln!(
        out,
        "/// Whether a reply code is a hard error (closes the connection) by default."
    )
    .unwrap();
    writeln!(
        out,
        "pub fn reply_code_is_hard(code: u16) -> bool {{\n    match code {{"
    )
    .unwrap();
    for rc in &spec.constants.reply_codes {
        let hard = match rc.scope.as_str() {
            "connection" => true,
            "channel" | "none" => false,
            s => panic!("{SPEC}: bad scope {s}"),
        };
        writeln!(out, "        {} => {hard},", rc.code).unwrap();
    }
    writeln!(out, "        _ => true,\n    }}\n}}\n").unwrap();

    // methods
    let mut all = Vec::new();
    for c in &spec.class {
        for m in &c.method {
            assert!(
                ["client", "server", "both"].contains(&m.sender.as_str()),
                "{SPEC}: {}.{}: bad sender {}",
                c.name,
                m.name,
                m.sender
            );
            if let Some(r) = &m.reply {
                for name in r {
                    assert!(
                        c.method.iter().any(|x| &x.name == name),
                        "{SPEC}: {}.{} replies with unknown {name}",
                        c.name,
                        m.name
                    );
                }
            }
            gen_method(&mut out, c, m);
            all.push((c, m, format!("{}{}", camel(&c.name), camel(&m.name))));
        }
        if !c.properties.is_empty() {
            gen_properties(&mut out, c);
        }
    }

    writeln!(out, "/// Every AMQP 0-9-1 method Warren knows, decoded.").unwrap();
    writeln!(
        out,
        "#[derive(Debug, Clone, PartialEq)]\npub enum Method {{"
    )
    .unwrap();
    for (_, _, n) in &all {
        writeln!(out, "    {n}({n}),").unwrap();
    }
    writeln!(out, "}}\n").unwrap();

    writeln!(out, "impl Method {{").unwrap();
    for (fname, body) in [
        ("class_id", "u16"),
        ("method_id", "u16"),
        ("name", "&'static str"),
    ] {
        writeln!(
            out,
            "    pub fn {fname}(&self) -> {body} {{\n        match self {{"
        )
        .unwrap();
        for (_, _, n) in &all {
            let k = match fname {
                "class_id" => "CLASS_ID",
                "method_id" => "METHOD_ID",
                _ => "NAME",
            };
            writeln!(out, "            Method::{n}(_) => {n}::{k},").unwrap();
        }
        writeln!(out, "        }}\n    }}").unwrap();
    }
    writeln!(
        out,
        "    /// Whether content (a header frame and body frames) follows this method.\n    pub fn has_content(&self) -> bool {{\n        matches!(self, {})\n    }}",
        all.iter()
            .filter(|(_, m, _)| m.content)
            .map(|(_, _, n)| format!("Method::{n}(_)"))
            .collect::<Vec<_>>()
            .join(" | ")
    )
    .unwrap();
    writeln!(
        out,
        "    /// Whether the method (class, method) carries content, before decoding it.\n    #[inline]\n    pub fn carries_content(class_id: u16, method_id: u16) -> bool {{\n        matches!((class_id, method_id), {})\n    }}",
        all.iter()
            .filter(|(_, m, _)| m.content)
            .map(|(c, m, _)| format!("({}, {})", c.id, m.id))
            .collect::<Vec<_>>()
            .join(" | ")
    )
    .unwrap();
    writeln!(
        out,
        "    /// Whether this method is a synchronous request that expects a reply.\n    pub fn is_synchronous_request(&self) -> bool {{\n        matches!(self, {})\n    }}",
        all.iter()
            .filter(|(_, m, _)| m.reply.is_some())
            .map(|(_, _, n)| format!("Method::{n}(_)"))
            .collect::<Vec<_>>()
            .join(" | ")
    )
    .unwrap();
    writeln!(
        out,
        "    /// Whether a client may send this method (else only the server sends it).\n    pub fn sent_by_client(&self) -> bool {{\n        matches!(self, {})\n    }}",
        all.iter()
            .filter(|(_, m, _)| m.sender != "server")
            .map(|(_, _, n)| format!("Method::{n}(_)"))
            .collect::<Vec<_>>()
            .join(" | ")
    )
    .unwrap();
    writeln!(out, "    /// Writes class id, method id and the arguments (a method frame's payload).\n    pub fn encode(&self, buf: &mut BytesMut) {{\n        buf.put_u16(self.class_id());\n        buf.put_u16(self.method_id());\n        match self {{").unwrap();
    for (_, _, n) in &all {
        writeln!(out, "            Method::{n}(m) => m.encode_fields(buf),").unwrap();
    }
    writeln!(out, "        }}\n    }}").unwrap();
    writeln!(
        out,
        "    /// Decodes the arguments of (class, method), which must use every octet of `i`.\n    /// The method is built in place: no intermediate `Result` of a different layout.\n    #[inline]\n    pub(crate) fn decode_args(class_id: u16, method_id: u16, i: &[u8], src: &Bytes) -> Result<Method, ArgsError> {{\n        match (class_id, method_id) {{"
    )
    .unwrap();
    for (c, m, n) in &all {
        writeln!(
            out,
            "            ({}, {}) => whole({n}::decode_fields(i, src)).map(Method::{n}),",
            c.id, m.id
        )
        .unwrap();
    }
    writeln!(
        out,
        "            _ => Err(ArgsError::UnknownMethod),\n        }}\n    }}"
    )
    .unwrap();
    writeln!(
        out,
        "    /// [`Method::decode_args`] for the content methods only (see [`Method::carries_content`]),\n    /// inlined, writing the method into `out` (which is left as it was on failure): the\n    /// hot path builds the method where it ends up instead of moving it there.\n    #[inline(always)]\n    pub(crate) fn decode_content_into(class_id: u16, method_id: u16, i: &[u8], src: &Bytes, out: &mut Method) -> Result<(), ArgsError> {{\n        match (class_id, method_id) {{"
    )
    .unwrap();
    for (c, m, n) in all.iter().filter(|(_, m, _)| m.content) {
        writeln!(
            out,
            "            ({}, {}) => {{ *out = Method::{n}(whole({n}::decode_fields(i, src))?); Ok(()) }}",
            c.id, m.id
        )
        .unwrap();
    }
    writeln!(
        out,
        "            _ => Err(ArgsError::UnknownMethod),\n        }}\n    }}"
    )
    .unwrap();
    writeln!(
        out,
        "    /// The method's name for (class, method) ids, for error messages.\n    pub fn name_of(class_id: u16, method_id: u16) -> Option<&'static str> {{\n        match (class_id, method_id) {{"
    )
    .unwrap();
    for (c, m, n) in &all {
        writeln!(out, "            ({}, {}) => Some({n}::NAME),", c.id, m.id).unwrap();
    }
    writeln!(out, "            _ => None,\n        }}\n    }}\n}}").unwrap();

    let dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    std::fs::write(dir.join("amqp_generated.rs"), out).unwrap();
    std::fs::write(dir.join("amqp_strategies.rs"), gen_strategies(&spec)).unwrap();
}
