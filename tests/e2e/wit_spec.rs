//! `wit/` must stay exactly the `inferlet:core` of the spec (Pie's published
//! SDK, `inferlet` 0.2.0): every function's name and signature, every type.

use wit_parser::{FunctionKind, Handle, Resolve, Type, TypeDefKind, TypeId};

/// Taken from the spec, one line per function or type, in WIT syntax; a
/// resource's functions are prefixed by the resource's name.
const SPEC: &str = r#"
common: type pointer = u32
common: enum priority { low, normal, high }
common: resource blob
common: blob.constructor(init: list<u8>)
common: blob.read: func(offset: u64, n: u64) -> list<u8>
common: blob.size: func() -> u64
common: resource blob-result
common: blob-result.pollable: func() -> pollable
common: blob-result.get: func() -> option<blob>
common: resource model
common: model.get-name: func() -> string
common: model.get-traits: func() -> list<string>
common: model.get-description: func() -> string
common: model.get-prompt-template: func() -> string
common: model.get-stop-tokens: func() -> list<string>
common: model.get-service-id: func() -> u32
common: model.get-kv-page-size: func() -> u32
common: model.create-queue: func() -> queue
common: resource queue
common: queue.get-service-id: func() -> u32
common: queue.synchronize: func() -> synchronization-result
common: queue.set-priority: func(priority: priority)
common: queue.debug-query: func(query: string) -> debug-query-result
common: resource synchronization-result
common: synchronization-result.pollable: func() -> pollable
common: synchronization-result.get: func() -> option<bool>
common: resource debug-query-result
common: debug-query-result.pollable: func() -> pollable
common: debug-query-result.get: func() -> option<string>
common: allocate-resources: func(queue: borrow<queue>, resource-type: u32, count: u32) -> list<pointer>
common: deallocate-resources: func(queue: borrow<queue>, resource-type: u32, ptrs: list<pointer>)
common: get-all-exported-resources: func(queue: borrow<queue>, resource-type: u32) -> list<tuple<string, u32>>
common: release-exported-resources: func(queue: borrow<queue>, resource-type: u32, name: string)
common: export-resources: func(queue: borrow<queue>, resource-type: u32, ptrs: list<pointer>, name: string)
common: import-resources: func(queue: borrow<queue>, resource-type: u32, name: string) -> list<pointer>
forward: resource forward-pass
forward: forward-pass.execute: func() -> option<forward-pass-result>
forward: resource forward-pass-result
forward: forward-pass-result.pollable: func() -> pollable
forward: forward-pass-result.get-distributions: func() -> option<list<tuple<list<u32>, list<f32>>>>
forward: forward-pass-result.get-tokens: func() -> option<list<u32>>
forward: create-forward-pass: func(queue: borrow<queue>) -> forward-pass
forward: attention-mask: func(pass: borrow<forward-pass>, mask: list<list<u32>>)
forward: kv-cache: func(pass: borrow<forward-pass>, kv-page-ptrs: list<pointer>, last-kv-page-len: u32)
forward: input-embeddings: func(pass: borrow<forward-pass>, emb-ptrs: list<pointer>, positions: list<u32>)
forward: input-tokens: func(pass: borrow<forward-pass>, input-tokens: list<u32>, positions: list<u32>)
forward: output-embeddings: func(pass: borrow<forward-pass>, emb-ptrs: list<pointer>, indices: list<u32>)
forward: output-distributions: func(pass: borrow<forward-pass>, indices: list<u32>, temperature: f32, top-k: option<u32>)
forward: output-tokens: func(pass: borrow<forward-pass>, indices: list<u32>, temperature: f32)
forward: output-tokens-top-k: func(pass: borrow<forward-pass>, indices: list<u32>, temperature: f32, top-k: u32)
forward: output-tokens-top-p: func(pass: borrow<forward-pass>, indices: list<u32>, temperature: f32, top-p: f32)
forward: output-tokens-min-p: func(pass: borrow<forward-pass>, indices: list<u32>, temperature: f32, min-p: f32)
forward: output-tokens-top-k-top-p: func(pass: borrow<forward-pass>, indices: list<u32>, temperature: f32, top-k: u32, top-p: f32)
kvs: store-get: func(key: string) -> option<string>
kvs: store-set: func(key: string, value: string)
kvs: store-delete: func(key: string)
kvs: store-exists: func(key: string) -> bool
kvs: store-list-keys: func() -> list<string>
message: resource subscription
message: subscription.pollable: func() -> pollable
message: subscription.get: func() -> option<string>
message: subscription.unsubscribe: func()
message: resource receive-result
message: receive-result.pollable: func() -> pollable
message: receive-result.get: func() -> option<string>
message: send: func(message: string)
message: receive: func() -> receive-result
message: send-blob: func(blob: blob)
message: receive-blob: func() -> blob-result
message: broadcast: func(topic: string, message: string)
message: subscribe: func(topic: string) -> subscription
runtime: get-version: func() -> string
runtime: get-instance-id: func() -> string
runtime: get-arguments: func() -> list<string>
runtime: set-return: func(value: string)
runtime: get-model: func(name: string) -> option<model>
runtime: get-all-models: func() -> list<string>
runtime: get-all-models-with-traits: func(traits: list<string>) -> list<string>
runtime: debug-query: func(query: string) -> debug-query-result
tokenize: get-tokenizer: func(queue: borrow<model>) -> tokenizer
tokenize: resource tokenizer
tokenize: tokenizer.tokenize: func(text: string) -> list<u32>
tokenize: tokenizer.detokenize: func(tokens: list<u32>) -> string
tokenize: tokenizer.get-vocabs: func() -> tuple<list<u32>, list<list<u8>>>
run: run: func() -> result<_, string>
"#;

fn load() -> Resolve {
    let mut resolve = Resolve::default();
    resolve.push_dir(crust_tests::repo_root().join("wit")).expect("wit/ parses");
    resolve
}

#[test]
fn inferlet_core_matches_the_spec() {
    let resolve = load();
    let (_, package) =
        resolve.packages.iter().find(|(_, p)| p.name.namespace == "inferlet" && p.name.name == "core").expect("wit/ has package inferlet:core");
    assert_eq!(package.name.version, None, "inferlet:core is unversioned, as in the spec");
    let mut actual = Vec::new();
    for (name, id) in &package.interfaces {
        let interface = &resolve.interfaces[*id];
        for (type_name, ty) in &interface.types {
            if let Some(line) = describe_type_def(&resolve, type_name, *ty) {
                actual.push(format!("{name}: {line}"));
            }
        }
        for function in interface.functions.values() {
            actual.push(format!("{name}: {}", describe_function(&resolve, function)));
        }
    }
    let mut expected: Vec<String> = SPEC.lines().filter(|l| !l.is_empty()).map(String::from).collect();
    actual.sort();
    expected.sort();
    let missing: Vec<_> = expected.iter().filter(|e| !actual.contains(e)).collect();
    let extra: Vec<_> = actual.iter().filter(|a| !expected.contains(a)).collect();
    assert!(missing.is_empty() && extra.is_empty(), "wit/ drifted from the spec\nmissing: {missing:#?}\nextra: {extra:#?}");
}

#[test]
fn the_imports_world_and_both_entry_shapes_exist() {
    let resolve = load();
    let world = |package: &str, name: &str| {
        resolve
            .worlds
            .iter()
            .find(|(_, w)| w.name == name && w.package.is_some_and(|p| resolve.packages[p].name.to_string().starts_with(package)))
            .map(|(_, w)| w)
            .unwrap_or_else(|| panic!("world {package}/{name} is missing"))
    };
    let key_names = |keys: Vec<&wit_parser::WorldKey>| -> Vec<String> { keys.into_iter().map(|k| resolve.name_world_key(k)).collect() };

    let imports = world("inferlet:core", "imports");
    let imported = key_names(imports.imports.keys().collect());
    for interface in ["common", "runtime", "forward", "tokenize", "kvs", "message"] {
        assert!(imported.contains(&format!("inferlet:core/{interface}")), "imports lacks {interface}: {imported:?}");
    }
    let inferlet = world("crust:inferlet", "inferlet");
    assert_eq!(key_names(inferlet.exports.keys().collect()), ["inferlet:core/run"]);
    let command = world("crust:inferlet", "command");
    assert_eq!(key_names(command.exports.keys().collect()), ["wasi:cli/run@0.2.4"]);
}

fn describe_type_def(resolve: &Resolve, name: &str, id: TypeId) -> Option<String> {
    let def = &resolve.types[id];
    match &def.kind {
        TypeDefKind::Resource => Some(format!("resource {name}")),
        TypeDefKind::Enum(e) => {
            let cases: Vec<&str> = e.cases.iter().map(|c| c.name.as_str()).collect();
            Some(format!("enum {name} {{ {} }}", cases.join(", ")))
        }
        // `use` brings in aliases of other interfaces' types; only local aliases are definitions.
        TypeDefKind::Type(Type::Id(_)) => None,
        TypeDefKind::Type(ty) => Some(format!("type {name} = {}", describe_type(resolve, ty))),
        other => Some(format!("{name}: unexpected {other:?}")),
    }
}

fn describe_function(resolve: &Resolve, f: &wit_parser::Function) -> String {
    let mut params = f.params.iter();
    let prefix = match &f.kind {
        FunctionKind::Method(resource) => {
            params.next(); // self
            format!("{}.", resolve.types[*resource].name.as_deref().unwrap())
        }
        FunctionKind::Constructor(resource) => {
            let resource = resolve.types[*resource].name.as_deref().unwrap();
            let params: Vec<String> = params.map(|p| format!("{}: {}", p.name, describe_type(resolve, &p.ty))).collect();
            return format!("{resource}.constructor({})", params.join(", "));
        }
        _ => String::new(),
    };
    let params: Vec<String> = params.map(|p| format!("{}: {}", p.name, describe_type(resolve, &p.ty))).collect();
    let result = f.result.map(|r| format!(" -> {}", describe_type(resolve, &r))).unwrap_or_default();
    format!("{prefix}{}: func({}){result}", f.item_name(), params.join(", "))
}

fn describe_type(resolve: &Resolve, ty: &Type) -> String {
    let id = match ty {
        Type::Id(id) => *id,
        Type::Bool => return "bool".into(),
        Type::U8 => return "u8".into(),
        Type::U16 => return "u16".into(),
        Type::U32 => return "u32".into(),
        Type::U64 => return "u64".into(),
        Type::S8 => return "s8".into(),
        Type::S16 => return "s16".into(),
        Type::S32 => return "s32".into(),
        Type::S64 => return "s64".into(),
        Type::F32 => return "f32".into(),
        Type::F64 => return "f64".into(),
        Type::Char => return "char".into(),
        Type::String => return "string".into(),
        Type::ErrorContext => return "error-context".into(),
    };
    let def = &resolve.types[id];
    if let Some(name) = &def.name {
        return name.clone();
    }
    let opt = |t: &Option<Type>| t.as_ref().map(|t| describe_type(resolve, t)).unwrap_or_else(|| "_".into());
    match &def.kind {
        TypeDefKind::List(t) => format!("list<{}>", describe_type(resolve, t)),
        TypeDefKind::Option(t) => format!("option<{}>", describe_type(resolve, t)),
        TypeDefKind::Result(r) => format!("result<{}, {}>", opt(&r.ok), opt(&r.err)),
        TypeDefKind::Tuple(t) => {
            let types: Vec<String> = t.types.iter().map(|t| describe_type(resolve, t)).collect();
            format!("tuple<{}>", types.join(", "))
        }
        TypeDefKind::Handle(Handle::Borrow(r)) => format!("borrow<{}>", describe_type(resolve, &Type::Id(*r))),
        TypeDefKind::Handle(Handle::Own(r)) => describe_type(resolve, &Type::Id(*r)),
        TypeDefKind::Type(t) => describe_type(resolve, t),
        other => format!("{other:?}"),
    }
}
