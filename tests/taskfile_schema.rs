//! The committed JSON Schema is the generated one, and it agrees with kkrun
//! about which files are valid.

mod taskfile_support;

use std::path::Path;

use assert_cmd::Command;
use serde_json::Value;

fn committed_schema() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/task.schema.json");
    std::fs::read_to_string(path).unwrap()
}

fn yaml_as_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(&committed_schema()).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

fn yaml_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

#[test]
fn committed_schema_equals_kkrun_schema_task() {
    let output = Command::cargo_bin("kkrun")
        .unwrap()
        .args(["schema", "task"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let generated = String::from_utf8(output.stdout).unwrap();
    assert!(
        committed_schema() == generated,
        "schemas/task.schema.json is out of date with the task-file types; regenerate it with\n\n    \
         cargo run -- schema task > schemas/task.schema.json\n"
    );
}

#[test]
fn the_schema_is_a_valid_draft_2020_12_schema() {
    let schema: Value = serde_json::from_str(&committed_schema()).unwrap();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    jsonschema::meta::validate(&schema).unwrap();
}

#[test]
fn every_valid_fixture_validates_against_the_schema() {
    let validator = validator();
    for file in yaml_files(&taskfile_support::fixtures().join("valid")) {
        let instance = yaml_as_json(&file);
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|error| format!("{} at {}", error, error.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", file.display());
    }
}

#[test]
fn the_schema_rejects_what_kkrun_rejects_for_structure() {
    let validator = validator();
    let broken = taskfile_support::fixtures().join("broken");
    // Files whose errors are about keys, types, ranges and forms (not about
    // the file system or cross-file rules) fail the schema too. `models.yaml`
    // is not among them: whether `opneai:` names a provider depends on the
    // configuration file's `providers:`, which a task file's schema cannot
    // see (kkrun itself still rejects it, see taskfile_errors).
    for name in [
        "unknown-keys.yaml",
        "type-errors.yaml",
        "bad-durations.yaml",
        "empty-run.yaml",
        "max-rounds-zero.yaml",
        "missing-keys.yaml",
        "list-form.yaml",
        "matrix.yaml",
        "prepare.yaml",
    ] {
        let instance = yaml_as_json(&broken.join(name));
        assert!(!validator.is_valid(&instance), "{name} passed the schema");
    }
}

#[test]
fn editors_get_descriptions_for_every_key() {
    let schema: Value = serde_json::from_str(&committed_schema()).unwrap();
    let definitions = schema["$defs"].as_object().unwrap();
    for (name, definition) in definitions {
        for (key, property) in definition["properties"].as_object().into_iter().flatten() {
            assert!(
                property["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "{name}.{key} has no description"
            );
        }
        if definition.get("properties").is_some() {
            assert_eq!(definition["additionalProperties"], false, "{name}");
        }
    }
}
