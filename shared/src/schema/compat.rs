//! Compatibility check between a registry and its previous release, in the spirit of
//! Confluent Schema Registry's BACKWARD mode: **a reader using the new registry must still
//! read every item written under the old one**, and published versions never change.
//!
//! Refused (each an [`Incompatibility`]):
//! - changing the key attributes or the version attribute; removing an entity or a version;
//!   editing a published version (its fields or upcast steps);
//! - removing a required field without an upcast (`drop` or `rename`);
//! - changing a field's type without a `widen` step, or to a type that is not a widening
//!   (narrowing a decimal's precision, changing a decimal's scale, changing a timestamp's
//!   storage encoding, `decimal` → `double`, ...);
//! - making a field required, or adding a required field, without a `default` step.
//!
//! Widenings accepted with a `widen` step: `int` → `decimal(p,s)` when `p - s >= 19`,
//! `int` → `double`, `int`/`decimal` → `number`, a larger decimal precision at the same
//! scale (also for number sets), anything → `json`, and struct changes that are themselves
//! compatible (optional sub-fields added or removed, widened sub-fields).
//!
//! Run it with the `schema-check` binary: `schema-check OLD.json NEW.json`.

use std::collections::HashMap;
use std::fmt;

use super::{FieldDef, FieldType, Registry, Upcast, VersionDef};

/// One reason the new registry cannot replace the old one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incompatibility {
    /// The entity concerned (empty for registry-wide problems).
    pub entity: String,
    /// The version concerned, if any.
    pub version: Option<i64>,
    /// The field concerned, if any.
    pub field: Option<String>,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for Incompatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.entity.is_empty() {
            write!(f, "entity {}", self.entity)?;
        } else {
            write!(f, "registry")?;
        }
        if let Some(v) = self.version {
            write!(f, " version {v}")?;
        }
        if let Some(field) = &self.field {
            write!(f, " field {field}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// Compares `new` with `old`; an empty result means `new` may be deployed.
pub fn check_backward(old: &Registry, new: &Registry) -> Vec<Incompatibility> {
    let mut out = Vec::new();
    let mut push = |entity: &str, version: Option<i64>, field: Option<&str>, reason: String| {
        out.push(Incompatibility {
            entity: entity.to_string(),
            version,
            field: field.map(str::to_string),
            reason,
        })
    };
    if old.def().keys != new.def().keys {
        push("", None, None, "the key attributes changed".into());
    }
    if old.def().version_attribute != new.def().version_attribute {
        push("", None, None, "the version attribute changed".into());
    }
    for old_e in &old.def().entities {
        let Some(new_e) = new.def().entities.iter().find(|e| e.name == old_e.name) else {
            push(&old_e.name, None, None, "the entity was removed".into());
            continue;
        };
        if old_e.selector != new_e.selector {
            push(&old_e.name, None, None, "the selector changed".into());
        }
        for ov in &old_e.versions {
            match new_e.versions.iter().find(|v| v.version == ov.version) {
                None => push(
                    &old_e.name,
                    Some(ov.version),
                    None,
                    "a published version was removed".into(),
                ),
                Some(nv) if nv != ov => push(
                    &old_e.name,
                    Some(ov.version),
                    None,
                    "a published version was modified (add a new version instead)".into(),
                ),
                Some(_) => {}
            }
        }
    }
    for e in &new.def().entities {
        for pair in e.versions.windows(2) {
            for (field, reason) in check_step(&pair[0], &pair[1]) {
                push(&e.name, Some(pair[1].version), Some(&field), reason);
            }
        }
    }
    out
}

/// Checks one upcast step `prev` → `next`; returns `(field, reason)` pairs.
fn check_step(prev: &VersionDef, next: &VersionDef) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut renamed: HashMap<&str, &str> = HashMap::new();
    let mut dropped = Vec::new();
    let mut widened = Vec::new();
    let mut defaulted = Vec::new();
    for u in &next.upcast {
        match u {
            Upcast::Rename { from, to } => {
                renamed.insert(from.as_str(), to.as_str());
            }
            Upcast::Drop { field } => dropped.push(field.as_str()),
            Upcast::Widen { field } => widened.push(field.as_str()),
            Upcast::Default { field, .. } => defaulted.push(field.as_str()),
        }
    }
    let find = |name: &str| next.fields.iter().find(|f| f.name == name);
    let mut carried = Vec::new();
    for pf in &prev.fields {
        if dropped.contains(&pf.name.as_str()) {
            continue;
        }
        let target = renamed.get(pf.name.as_str()).copied().unwrap_or(&pf.name);
        let Some(nf) = find(target) else {
            if pf.required {
                out.push((
                    pf.name.clone(),
                    "a required field was removed without a drop or rename upcast".into(),
                ));
            }
            continue;
        };
        carried.push(target);
        if pf.ty != nf.ty {
            match widening(&pf.ty, &nf.ty) {
                Err(reason) => out.push((nf.name.clone(), reason)),
                Ok(()) if !widened.contains(&target) => out.push((
                    nf.name.clone(),
                    format!(
                        "type changed from {} to {} without a widen upcast",
                        pf.ty.describe(),
                        nf.ty.describe()
                    ),
                )),
                Ok(()) => {}
            }
        }
        if nf.required && !pf.required && !defaulted.contains(&target) {
            out.push((
                nf.name.clone(),
                "became required without a default upcast".into(),
            ));
        }
    }
    for nf in &next.fields {
        if !carried.contains(&nf.name.as_str())
            && nf.required
            && !defaulted.contains(&nf.name.as_str())
        {
            out.push((
                nf.name.clone(),
                "a required field was added without a default upcast".into(),
            ));
        }
    }
    out
}

/// `Ok` when every value valid for `from` is valid for `to` and keeps its meaning.
fn widening(from: &FieldType, to: &FieldType) -> Result<(), String> {
    use FieldType as T;
    let narrowing = || {
        Err(format!(
            "{} → {} is not a widening",
            from.describe(),
            to.describe()
        ))
    };
    match (from, to) {
        (a, b) if a == b => Ok(()),
        (_, T::Json) => Ok(()),
        (T::Int, T::Double | T::Number) => Ok(()),
        (T::Int, T::Decimal { precision, scale }) => {
            if i16::from(*precision) - i16::from(*scale) >= 19 {
                Ok(())
            } else {
                Err(format!(
                    "int → {} can overflow (needs precision - scale >= 19)",
                    to.describe()
                ))
            }
        }
        (T::Decimal { .. }, T::Number) => Ok(()),
        (
            T::Decimal {
                precision: p1,
                scale: s1,
            },
            T::Decimal {
                precision: p2,
                scale: s2,
            },
        )
        | (
            T::NumberSet {
                precision: p1,
                scale: s1,
            },
            T::NumberSet {
                precision: p2,
                scale: s2,
            },
        ) => {
            if s1 != s2 {
                Err(format!("changing a decimal scale ({s1} → {s2}) is refused"))
            } else if p2 < p1 {
                Err(format!(
                    "narrowing a decimal precision ({p1} → {p2}) is refused"
                ))
            } else {
                Ok(())
            }
        }
        (T::Struct { fields: a }, T::Struct { fields: b }) => struct_widening(a, b),
        _ => narrowing(),
    }
}

fn struct_widening(prev: &[FieldDef], next: &[FieldDef]) -> Result<(), String> {
    for pf in prev {
        match next.iter().find(|f| f.name == pf.name) {
            None if pf.required => {
                return Err(format!("struct field {} (required) was removed", pf.name));
            }
            None => {}
            Some(nf) => {
                widening(&pf.ty, &nf.ty).map_err(|r| format!("struct field {}: {r}", pf.name))?;
                if nf.required && !pf.required {
                    return Err(format!("struct field {} became required", pf.name));
                }
            }
        }
    }
    for nf in next {
        if nf.required && !prev.iter().any(|f| f.name == nf.name) {
            return Err(format!("required struct field {} was added", nf.name));
        }
    }
    Ok(())
}
