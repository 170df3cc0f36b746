//! Every class of bad value is a typed error naming the attribute, and no input panics
//! (property test over arbitrary attribute values).

mod common;

use common::*;
use dynabridge_shared::codec::{BatchDecoder, BatchEncoder, Op, RowMeta};
use dynabridge_shared::schema::{Attributes, ItemError, Registry};
use proptest::collection::{hash_map, vec};
use proptest::prelude::*;
use serde_dynamo::AttributeValue as V;

const ALL_TYPES: &str = r#"{
  "keys": [{"name": "pk", "type": "string", "required": true}],
  "entities": [{"name": "All", "selector": {"key_prefix": {"attribute": "pk", "prefix": "A#"}},
    "versions": [{"version": 1, "fields": [
      {"name": "s", "type": "string"},
      {"name": "i", "type": "int"},
      {"name": "num", "type": "number"},
      {"name": "dec", "type": {"decimal": {"precision": 10, "scale": 3}}},
      {"name": "dbl", "type": "double"},
      {"name": "ts_iso", "type": {"timestamp": "iso8601"}},
      {"name": "ts_s", "type": {"timestamp": "epoch_seconds"}},
      {"name": "ts_ms", "type": {"timestamp": "epoch_millis"}},
      {"name": "d", "type": "date"},
      {"name": "b", "type": "bool"},
      {"name": "bin", "type": "binary"},
      {"name": "ss", "type": "string_set"},
      {"name": "ns", "type": {"number_set": {"precision": 12, "scale": 4}}},
      {"name": "bs", "type": "binary_set"},
      {"name": "st", "type": {"struct": {"fields": [
        {"name": "a", "type": "string", "required": true},
        {"name": "n", "type": "int"}]}}},
      {"name": "sm", "type": "string_map"},
      {"name": "j", "type": "json"},
      {"name": "req", "type": "string", "required": false}
    ]}]}]
}"#;

const FIELDS: [&str; 17] = [
    "s", "i", "num", "dec", "dbl", "ts_iso", "ts_s", "ts_ms", "d", "b", "bin", "ss", "ns", "bs",
    "st", "sm", "j",
];

fn registry() -> Registry {
    Registry::from_json_str(ALL_TYPES, "all").unwrap()
}

fn meta() -> RowMeta<'static> {
    RowMeta {
        op: Op::Snapshot,
        seq: "0",
        event_time_micros: 0,
    }
}

fn encode_one(reg: &Registry, field: &str, value: V) -> Result<(), ItemError> {
    let mut enc = BatchEncoder::new(reg.entity("All").unwrap());
    let it: Attributes = item(vec![("pk", s("A#1")), (field, value)]);
    enc.append(&it, &meta())
}

#[test]
fn every_bad_value_class_names_the_attribute() {
    let reg = registry();
    let cases: Vec<(&str, V, &str)> = vec![
        ("s", n("1"), "WrongType"),
        ("i", s("1"), "WrongType"),
        ("i", n("1.5"), "InvalidValue"),
        ("i", n("9223372036854775808"), "InvalidValue"),
        ("num", n("12abc"), "InvalidValue"),
        ("dec", n("1.0005"), "InvalidValue"),
        ("dec", n("12345678.9"), "InvalidValue"),
        ("dec", n("1E400"), "InvalidValue"),
        ("dbl", n("1E400"), "InvalidValue"),
        ("dbl", n("NaN"), "InvalidValue"),
        ("ts_iso", s("2026-11-21 10:00"), "InvalidValue"),
        ("ts_iso", s("2026-11-21T10:00:00.0000001Z"), "InvalidValue"),
        ("ts_iso", n("1"), "WrongType"),
        ("ts_s", n("1.0000001"), "InvalidValue"),
        ("ts_s", n("99999999999999"), "InvalidValue"),
        ("ts_ms", s("1"), "WrongType"),
        ("d", s("2026-02-30"), "InvalidValue"),
        ("d", s("2026-1-5"), "InvalidValue"),
        ("b", s("true"), "WrongType"),
        ("bin", s("AAAA"), "WrongType"),
        ("ss", V::L(vec![s("a")]), "WrongType"),
        (
            "ns",
            V::Ns(vec!["1".into(), "0.00001".into()]),
            "InvalidValue",
        ),
        ("bs", V::Ss(vec!["a".into()]), "WrongType"),
        ("ss", V::Ss(vec!["a".into(), "a".into()]), "InvalidValue"),
        (
            "ns",
            V::Ns(vec!["1".into(), "1.000".into()]),
            "InvalidValue",
        ),
        ("bs", V::Bs(vec![vec![1], vec![1]]), "InvalidValue"),
        ("st", m(vec![("n", n("1"))]), "Missing"),
        (
            "st",
            m(vec![("a", s("x")), ("zzz", s("y"))]),
            "UnknownField",
        ),
        ("st", m(vec![("a", s("x")), ("n", s("y"))]), "WrongType"),
        ("sm", m(vec![("k", n("1"))]), "WrongType"),
        ("sm", V::L(vec![]), "WrongType"),
    ];
    for (field, value, kind) in cases {
        let err = encode_one(&reg, field, value.clone())
            .expect_err(&format!("{field} = {value:?} must be refused"));
        assert_eq!(err.kind(), kind, "{field} = {value:?}: {err}");
        let attr = err.attribute().unwrap_or_default();
        assert!(
            attr == field || attr.starts_with(&format!("{field}.")),
            "{field}: {err}"
        );
        assert!(err.to_string().contains(field), "{err}");
    }
    // A missing required key.
    let mut enc = BatchEncoder::new(reg.entity("All").unwrap());
    let err = enc.append(&item(vec![("s", s("x"))]), &meta()).unwrap_err();
    assert_eq!(
        err,
        ItemError::Missing {
            attribute: "pk".into()
        }
    );
}

fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[-+]?[0-9]{0,40}(\\.[0-9]{0,40})?([eE][-+]?[0-9]{1,5})?",
        "[0-9.eE+-]{0,12}",
        any::<String>(),
    ]
}

fn leaf() -> BoxedStrategy<V> {
    prop_oneof![
        any::<String>().prop_map(V::S),
        number_text().prop_map(V::N),
        "[0-9]{4}-[0-9]{2}-[0-9]{2}".prop_map(V::S),
        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})"
            .prop_map(V::S),
        any::<bool>().prop_map(V::Bool),
        vec(any::<u8>(), 0..8).prop_map(V::B),
        Just(V::Null(true)),
        vec(any::<String>(), 0..4).prop_map(V::Ss),
        vec(number_text(), 0..4).prop_map(V::Ns),
        vec(vec(any::<u8>(), 0..4), 0..3).prop_map(V::Bs),
    ]
    .boxed()
}

fn value() -> impl Strategy<Value = V> {
    leaf().prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(V::L),
            hash_map("[a-z]{1,2}|\\PC{0,4}", inner, 0..4).prop_map(V::M),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any value in any field: a typed error naming the field, or a row that encodes,
    /// writes and reads back without error.
    #[test]
    fn arbitrary_values_never_panic(field_index in 0..FIELDS.len(), v in value(), extra in value()) {
        let reg = registry();
        let entity = reg.entity("All").unwrap();
        let field = FIELDS[field_index];
        let mut enc = BatchEncoder::new(entity);
        let it = item(vec![("pk", s("A#1")), (field, v.clone()), ("zz_extra", extra)]);
        match enc.append(&it, &meta()) {
            Err(err) => {
                let attr = err.attribute().unwrap_or_default().to_string();
                // The unnamed attribute is checked too (DynamoDB's number and nesting limits).
                prop_assert!(attr == field || attr.starts_with(&format!("{field}.")) || attr == "zz_extra", "{field}: {err}");
            }
            Ok(()) => {
                let batch = enc.finish().unwrap();
                let rows = BatchDecoder::new(entity).decode(&batch);
                prop_assert_eq!(rows.len(), 1);
                let back = rows[0].as_ref().map_err(|e| TestCaseError::fail(format!("{field} = {v:?}: {e}")))?;
                // Whatever was accepted comes back as an equal value (or absent when it was NULL
                // or an empty set).
                match back.item.get(field) {
                    Some(got) if field != "ts_iso" => prop_assert!(values_equal(&v, got) || field == "dbl", "{field}: {v:?} -> {got:?}"),
                    _ => {}
                }
            }
        }
    }

    /// The number parser and decimal scaling agree with a reference over random digit strings.
    #[test]
    fn decimals_are_exact(int in "[0-9]{1,7}", frac in "[0-9]{0,3}", neg in any::<bool>()) {
        let reg = registry();
        let text = format!("{}{int}.{frac}", if neg { "-" } else { "" });
        let mut enc = BatchEncoder::new(reg.entity("All").unwrap());
        enc.append(&item(vec![("pk", s("A#1")), ("dec", n(&text))]), &meta()).unwrap();
        let batch = enc.finish().unwrap();
        let back = BatchDecoder::new(reg.entity("All").unwrap()).decode(&batch).remove(0).unwrap();
        prop_assert!(values_equal(&back.item["dec"], &n(&text)), "{text} -> {:?}", back.item["dec"]);
    }
}
