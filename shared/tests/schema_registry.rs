//! Registry loading and validation, version resolution, and the compatibility check
//! (library and `schema-check` binary) on the example registry.

mod common;

use common::*;
use dynabridge_shared::config::Env;
use dynabridge_shared::schema::compat::check_backward;
use dynabridge_shared::schema::{
    ItemError, Registry, SCHEMA_JSON_VAR, SCHEMA_PATH_VAR, SchemaError,
};
use serde_json::{Value, json};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/example.json");
const EXAMPLE_PREV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/example.prev.json");

fn example_json() -> Value {
    serde_json::from_str(&std::fs::read_to_string(EXAMPLE).unwrap()).unwrap()
}

fn load(v: &Value) -> Result<Registry, SchemaError> {
    Registry::from_json_str(&v.to_string(), "test")
}

#[test]
fn loads_from_path_or_variable() {
    let from_path = Registry::from_env(&Env::from_pairs([(SCHEMA_PATH_VAR, EXAMPLE)])).unwrap();
    let text = std::fs::read_to_string(EXAMPLE).unwrap();
    let from_json =
        Registry::from_env(&Env::from_pairs([(SCHEMA_JSON_VAR, text.as_str())])).unwrap();
    assert_eq!(from_path.fingerprint(), from_json.fingerprint());
    let err = Registry::from_env(&Env::from_pairs([("X", "y")])).unwrap_err();
    assert!(err.to_string().contains(SCHEMA_PATH_VAR), "{err}");
    let err = Registry::from_path("/nonexistent/registry.json").unwrap_err();
    assert!(matches!(err, SchemaError::Io { .. }));
}

#[test]
fn fingerprints_are_stable_and_change_with_content() {
    let a = example_registry();
    let b = load(&example_json()).unwrap();
    assert_eq!(a.fingerprint(), b.fingerprint());
    let fa = a
        .entity("Order")
        .unwrap()
        .latest()
        .fingerprint()
        .to_string();
    let mut changed = example_json();
    changed["entities"][1]["versions"][1]["fields"][4]["name"] = json!("state");
    let c = load(&changed).unwrap();
    assert_ne!(c.entity("Order").unwrap().latest().fingerprint(), fa);
    // Customer is untouched: its fingerprint does not move.
    assert_eq!(
        c.entity("Customer").unwrap().latest().fingerprint(),
        a.entity("Customer").unwrap().latest().fingerprint()
    );
}

#[test]
fn invalid_registries_are_refused_with_context() {
    type Mutation = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Mutation)> = vec![
        (
            "unknown field",
            Box::new(|v| v["entities"][0]["versions"][0]["fields"][0]["requird"] = json!(true)),
        ),
        (
            "decimal precision",
            Box::new(|v| {
                v["entities"][1]["versions"][0]["fields"][1]["type"] =
                    json!({"decimal": {"precision": 39, "scale": 2}})
            }),
        ),
        (
            "decimal scale",
            Box::new(|v| {
                v["entities"][1]["versions"][0]["fields"][1]["type"] =
                    json!({"decimal": {"precision": 5, "scale": 6}})
            }),
        ),
        (
            "empty struct",
            Box::new(|v| {
                v["entities"][0]["versions"][0]["fields"][6]["type"] =
                    json!({"struct": {"fields": []}})
            }),
        ),
        (
            "duplicate field",
            Box::new(|v| {
                let f = v["entities"][0]["versions"][0]["fields"][0].clone();
                v["entities"][0]["versions"][0]["fields"]
                    .as_array_mut()
                    .unwrap()
                    .push(f);
            }),
        ),
        (
            "reserved",
            Box::new(|v| v["entities"][0]["versions"][0]["fields"][0]["name"] = json!("_extra")),
        ),
        (
            "gap",
            Box::new(|v| v["entities"][0]["versions"][1]["version"] = json!(3)),
        ),
        (
            "rename source",
            Box::new(|v| {
                v["entities"][0]["versions"][1]["upcast"][0] =
                    json!({"rename": {"from": "nope", "to": "full_name"}})
            }),
        ),
        (
            "bad default",
            Box::new(|v| {
                v["entities"][0]["versions"][1]["upcast"][1] =
                    json!({"default": {"field": "tier", "value": {"X": 1}}})
            }),
        ),
        (
            "entity name",
            Box::new(|v| v["entities"][0]["name"] = json!("Cust/omer")),
        ),
        (
            "default of the wrong type",
            Box::new(|v| {
                v["entities"][0]["versions"][1]["upcast"][1] =
                    json!({"default": {"field": "tier", "value": {"N": "1"}}})
            }),
        ),
        (
            "optional key",
            Box::new(|v| v["keys"][0]["required"] = json!(false)),
        ),
    ];
    for (what, mutate) in cases {
        let mut v = example_json();
        mutate(&mut v);
        let err = load(&v).expect_err(what);
        assert!(
            matches!(err, SchemaError::Invalid { .. } | SchemaError::Parse { .. }),
            "{what}: {err}"
        );
    }
}

#[test]
fn versions_resolve_and_unknown_versions_are_typed_errors() {
    let registry = example_registry();
    let customer = item(vec![("pk", s("C#1")), ("entity_type", s("Customer"))]);
    let e = registry.select(&customer).unwrap();
    assert_eq!(e.name(), "Customer");
    assert_eq!(
        e.item_version(&customer).unwrap(),
        1,
        "absent version attribute = oldest"
    );

    let mut newer = customer.clone();
    newer.insert("schema_version".into(), n("3"));
    let err = e.item_version(&newer).unwrap_err();
    assert!(
        matches!(err, ItemError::UnknownVersion { version: 3, .. }),
        "{err}"
    );
    assert_eq!(err.attribute(), Some("schema_version"));

    let mut bad = customer.clone();
    bad.insert("schema_version".into(), s("2"));
    assert!(matches!(
        e.item_version(&bad),
        Err(ItemError::InvalidVersion { .. })
    ));

    let order = item(vec![("pk", s("ORDER#1"))]);
    assert_eq!(registry.select(&order).unwrap().name(), "Order");
    let nothing = item(vec![("pk", s("OTHER#1"))]);
    assert_eq!(registry.select(&nothing).unwrap_err(), ItemError::NoEntity);
}

#[test]
fn rename_onto_an_existing_attribute_is_an_item_error() {
    let registry = example_registry();
    let customer = registry.entity("Customer").unwrap();
    let v1 = item(vec![
        ("pk", s("C#1")),
        ("entity_type", s("Customer")),
        ("name", s("old")),
        ("full_name", s("new")),
    ]);
    let err = customer.resolve(&v1).unwrap_err();
    assert_eq!(err.attribute(), Some("name"), "{err}");
    // An item already at the latest version is borrowed, not copied.
    let v2 = item(vec![("pk", s("C#1")), ("schema_version", n("2"))]);
    assert!(matches!(
        customer.resolve(&v2).unwrap().item,
        std::borrow::Cow::Borrowed(_)
    ));
}

#[test]
fn example_registry_is_a_compatible_evolution() {
    let old = Registry::from_path(EXAMPLE_PREV).unwrap();
    let new = example_registry();
    let problems = check_backward(&old, &new);
    assert!(problems.is_empty(), "{problems:#?}");
}

fn incompatible(mutate: impl Fn(&mut Value), expect: &str) {
    let old = example_registry();
    let mut v = example_json();
    mutate(&mut v);
    let new = load(&v).unwrap_or_else(|e| panic!("{expect}: {e}"));
    let problems = check_backward(&old, &new);
    assert!(
        problems.iter().any(|p| p.to_string().contains(expect)),
        "expected {expect:?} in {problems:#?}"
    );
}

/// Adds version 3 of Order: a copy of version 2 changed by `f`.
fn order_v3(f: impl Fn(&mut Value)) -> impl Fn(&mut Value) {
    move |v: &mut Value| {
        let mut v3 = v["entities"][1]["versions"][1].clone();
        v3["version"] = json!(3);
        v3["upcast"] = json!([]);
        f(&mut v3);
        v["entities"][1]["versions"]
            .as_array_mut()
            .unwrap()
            .push(v3);
    }
}

fn field_index(v3: &Value, name: &str) -> usize {
    v3["fields"]
        .as_array()
        .unwrap()
        .iter()
        .position(|f| f["name"] == name)
        .unwrap()
}

#[test]
fn incompatible_evolutions_are_refused() {
    incompatible(
        order_v3(|v3| {
            let i = field_index(v3, "customer_id");
            v3["fields"].as_array_mut().unwrap().remove(i);
        }),
        "required field was removed",
    );
    incompatible(
        order_v3(|v3| {
            let i = field_index(v3, "total");
            v3["fields"][i]["type"] = json!({"decimal": {"precision": 18, "scale": 3}});
            v3["upcast"] = json!([{"widen": {"field": "total"}}]);
        }),
        "changing a decimal scale",
    );
    incompatible(
        order_v3(|v3| {
            let i = field_index(v3, "total");
            v3["fields"][i]["type"] = json!({"decimal": {"precision": 10, "scale": 2}});
            v3["upcast"] = json!([{"widen": {"field": "total"}}]);
        }),
        "narrowing a decimal precision",
    );
    incompatible(
        order_v3(|v3| {
            let i = field_index(v3, "discount");
            v3["fields"][i]["type"] = json!("int");
            v3["upcast"] = json!([{"widen": {"field": "discount"}}]);
        }),
        "is not a widening",
    );
    incompatible(
        order_v3(|v3| {
            let i = field_index(v3, "total");
            v3["fields"][i]["type"] = json!({"decimal": {"precision": 20, "scale": 2}});
        }),
        "without a widen upcast",
    );
    incompatible(
        order_v3(|v3| {
            v3["fields"]
                .as_array_mut()
                .unwrap()
                .push(json!({"name": "channel", "type": "string", "required": true}));
        }),
        "required field was added without a default",
    );
    incompatible(
        |v| v["entities"][1]["versions"][1]["fields"][4]["type"] = json!("json"),
        "published version was modified",
    );
    incompatible(
        |v| {
            v["entities"].as_array_mut().unwrap().remove(0);
        },
        "entity was removed",
    );
    // Removing an *optional* field is fine (it lands in `_extra`), and so is a declared drop.
    let old = example_registry();
    let mut v = example_json();
    order_v3(|v3| {
        let i = field_index(v3, "status");
        v3["fields"].as_array_mut().unwrap().remove(i);
        let i = field_index(v3, "customer_id");
        v3["fields"].as_array_mut().unwrap().remove(i);
        v3["upcast"] = json!([{"drop": {"field": "customer_id"}}]);
    })(&mut v);
    assert!(check_backward(&old, &load(&v).unwrap()).is_empty());
}

#[test]
fn schema_check_binary() {
    let bin = env!("CARGO_BIN_EXE_schema-check");
    let out = std::process::Command::new(bin)
        .args([EXAMPLE_PREV, EXAMPLE])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Reversed, the evolution is refused (the newer versions are "removed").
    let out = std::process::Command::new(bin)
        .args([EXAMPLE, EXAMPLE_PREV])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("incompatible"), "{stderr}");
    let out = std::process::Command::new(bin)
        .args([EXAMPLE, "/nonexistent.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
