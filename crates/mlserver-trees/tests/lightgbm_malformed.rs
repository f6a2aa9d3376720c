//! Untrusted LightGBM text models: every defect must come back as a typed
//! error naming what is wrong (and where), never a panic, a hang or a huge
//! allocation.

use std::path::PathBuf;

use mlserver_trees::lightgbm::{LoadError, Model, NodeDefect, TreeDefect};

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/lightgbm")
        .join(name);
    std::fs::read_to_string(path).expect("fixture exists")
}

/// `regression.txt` without its `tree_sizes` line (so edits that change a
/// tree's length are read sequentially, as LightGBM does for such files).
fn base() -> String {
    fixture("regression.txt")
        .lines()
        .filter(|l| !l.starts_with("tree_sizes="))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Replaces the value of `key` in the first tree block of `text`.
fn set(text: &str, key: &str, value: &str) -> String {
    let tree0 = text.find("Tree=0\n").expect("tree 0");
    let needle = format!("\n{key}=");
    let at = tree0 + text[tree0..].find(&needle).expect("key in tree 0") + needle.len();
    let end = at + text[at..].find('\n').expect("line end");
    format!("{}{value}{}", &text[..at], &text[end..])
}

/// Replaces value `index` of the array `key` in the first tree block.
fn set_at(text: &str, key: &str, index: usize, value: &str) -> String {
    let tree0 = text.find("Tree=0\n").expect("tree 0");
    let needle = format!("\n{key}=");
    let at = tree0 + text[tree0..].find(&needle).expect("key") + needle.len();
    let end = at + text[at..].find('\n').expect("line end");
    let mut values: Vec<&str> = text[at..end].split(' ').collect();
    values[index] = value;
    set(text, key, &values.join(" "))
}

fn load(text: &str) -> Result<Model, LoadError> {
    Model::from_text(text.as_bytes())
}

fn node_defect(r: Result<Model, LoadError>) -> (usize, usize, NodeDefect) {
    match r {
        Err(LoadError::Node { tree, node, defect }) => (tree, node, defect),
        other => panic!("expected a node error, got {other:?}"),
    }
}

fn tree_defect(r: Result<Model, LoadError>) -> (usize, TreeDefect) {
    match r {
        Err(LoadError::Tree { tree, defect }) => (tree, defect),
        other => panic!("expected a tree error, got {other:?}"),
    }
}

#[test]
fn the_base_without_tree_sizes_predicts_like_the_original() {
    let original = Model::from_text(fixture("regression.txt").as_bytes()).expect("loads");
    let edited = load(&base()).expect("loads");
    let rows: Vec<f64> = (0..80).map(|i| (i as f64 - 40.0) / 7.0).collect();
    assert_eq!(
        original.predict(&rows, 10).expect("ok"),
        edited.predict(&rows, 10).expect("ok")
    );
    // CRLF line endings read the same.
    let crlf = base().replace('\n', "\r\n");
    assert_eq!(
        load(&crlf).expect("loads").predict(&rows, 10).expect("ok"),
        edited.predict(&rows, 10).expect("ok")
    );
}

#[test]
fn truncated_files_are_refused_at_every_length() {
    for name in ["regression.txt", "multiclass.txt"] {
        let text = fixture(name);
        let complete = text.find("end of trees").expect("end") + "end of trees".len();
        for cut in 0..complete {
            assert!(
                Model::from_text(&text.as_bytes()[..cut]).is_err(),
                "{name} cut at byte {cut} was accepted"
            );
        }
        // What follows `end of trees` is never needed.
        Model::from_text(&text.as_bytes()[..complete]).expect("complete trees");
    }
}

#[test]
fn not_a_lightgbm_model() {
    for text in ["", "{\"learner\": {}}", "\n", "tree"] {
        assert!(
            matches!(load(text), Err(LoadError::Syntax { .. })),
            "{text:?}"
        );
    }
}

#[test]
fn child_index_out_of_range() {
    let r = load(&set_at(&base(), "left_child", 0, "99"));
    assert_eq!(node_defect(r), (0, 0, NodeDefect::ChildOutOfRange(99)));
    let r = load(&set_at(&base(), "right_child", 2, "-9"));
    assert_eq!(node_defect(r), (0, 2, NodeDefect::ChildOutOfRange(-9)));
    let r = load(&set_at(&base(), "left_child", 1, "-99999999999"));
    assert_eq!(
        node_defect(r),
        (0, 1, NodeDefect::ChildOutOfRange(-99_999_999_999))
    );
}

#[test]
fn cycles_and_shared_subtrees() {
    // Node 1's left child back to the root.
    let r = load(&set_at(&base(), "left_child", 1, "0"));
    assert_eq!(node_defect(r), (0, 1, NodeDefect::ChildReachedTwice(0)));
    // Both children of the root are node 1.
    let r = load(&set_at(&base(), "right_child", 0, "1"));
    assert!(matches!(node_defect(r).2, NodeDefect::ChildReachedTwice(1)));
    // Two nodes share a leaf.
    let r = load(&set_at(&base(), "right_child", 2, "-2"));
    assert!(matches!(
        node_defect(r).2,
        NodeDefect::ChildReachedTwice(-2)
    ));
}

#[test]
fn feature_index_out_of_range() {
    let r = load(&set_at(&base(), "split_feature", 3, "8"));
    assert_eq!(
        node_defect(r),
        (
            0,
            3,
            NodeDefect::FeatureOutOfRange {
                index: 8,
                max_feature_idx: 7
            }
        )
    );
    let r = load(&set_at(&base(), "split_feature", 0, "-1"));
    assert!(matches!(
        node_defect(r).2,
        NodeDefect::FeatureOutOfRange { index: -1, .. }
    ));
}

#[test]
fn huge_or_bad_counts_allocate_nothing() {
    let r = load(&set(&base(), "num_leaves", "4000000000"));
    assert_eq!(
        tree_defect(r),
        (
            0,
            TreeDefect::ArrayLength {
                field: "leaf_value",
                expected: 4_000_000_000,
                found: 8
            }
        )
    );
    let r = load(&set(&base(), "num_leaves", "99999999999999999999999"));
    assert!(matches!(
        tree_defect(r).1,
        TreeDefect::BadToken {
            field: "num_leaves",
            ..
        }
    ));
    let r = load(&set(&base(), "num_leaves", "0"));
    assert_eq!(tree_defect(r), (0, TreeDefect::LeafCount(0)));
    let r = load(&set(&base(), "num_cat", "9223372036854775807"));
    assert!(matches!(
        tree_defect(r).1,
        TreeDefect::ArrayLength {
            field: "cat_boundaries",
            ..
        }
    ));
    let r = load(&set(&base(), "num_cat", "-1"));
    assert_eq!(tree_defect(r), (0, TreeDefect::CatCount(-1)));
    // A header count the text cannot back.
    let r = load(&base().replace("max_feature_idx=7", "max_feature_idx=9223372036854775806"));
    assert!(matches!(r, Err(LoadError::Field { ref field, .. }) if field == "feature_names"));
}

#[test]
fn array_lengths_and_tokens() {
    let r = load(&set(&base(), "threshold", "0.5 0.5"));
    assert!(matches!(
        tree_defect(r).1,
        TreeDefect::ArrayLength {
            field: "threshold",
            expected: 7,
            found: 2
        }
    ));
    let r = load(&set_at(&base(), "leaf_value", 0, "zero"));
    assert!(matches!(
        tree_defect(r).1,
        TreeDefect::BadToken {
            field: "leaf_value",
            ..
        }
    ));
    let text = base();
    let without = text.replacen("\nleft_child=", "\nnot_left_child=", 1);
    assert_eq!(
        tree_defect(load(&without)),
        (0, TreeDefect::MissingField("left_child"))
    );
}

#[test]
fn bad_cat_boundaries() {
    let bad = |value: &str| tree_defect(load(&set(&base(), "cat_boundaries", value))).1;
    assert!(matches!(bad("0 5"), TreeDefect::CatBoundaries(_)));
    assert!(matches!(bad("1 1"), TreeDefect::CatBoundaries(_)));
    assert!(matches!(bad("0 -1"), TreeDefect::CatBoundaries(_)));
    assert!(matches!(
        bad("0 1 1"),
        TreeDefect::ArrayLength {
            field: "cat_boundaries",
            ..
        }
    ));
    // Node 6 is the categorical split; its threshold is the bitset index.
    let r = load(&set_at(&base(), "threshold", 6, "1"));
    assert_eq!(node_defect(r), (0, 6, NodeDefect::CategoryIndex(1.0)));
    let r = load(&set_at(&base(), "threshold", 6, "0.5"));
    assert_eq!(node_defect(r), (0, 6, NodeDefect::CategoryIndex(0.5)));
    // A categorical split in a tree without bitsets.
    let text = set(&set(&base(), "num_cat", "0"), "cat_boundaries", "");
    assert!(matches!(
        node_defect(load(&text)).2,
        NodeDefect::CategoryIndex(_)
    ));
}

#[test]
fn unknown_decision_types() {
    for value in ["16", "12", "-1", "128"] {
        let r = load(&set_at(&base(), "decision_type", 0, value));
        assert!(
            matches!(node_defect(r), (0, 0, NodeDefect::DecisionType(_))),
            "{value}"
        );
    }
}

#[test]
fn linear_trees_are_unsupported() {
    // As written by `linear_tree=True`.
    let r = load(&fixture("linear_tree.txt"));
    assert!(matches!(r, Err(LoadError::Unsupported(_))), "{r:?}");
    let r = load(&set(&base(), "is_linear", "1"));
    assert!(matches!(r, Err(LoadError::Unsupported(_))), "{r:?}");
}

#[test]
fn header_defects() {
    let field_of = |r: Result<Model, LoadError>| match r {
        Err(LoadError::Field { field, .. }) => field,
        other => panic!("expected a field error, got {other:?}"),
    };
    let text = base();
    assert_eq!(
        field_of(load(&text.replace("num_class=1\n", ""))),
        "num_class"
    );
    assert_eq!(
        field_of(load(&text.replace("num_class=1\n", "num_class=x\n"))),
        "num_class"
    );
    assert_eq!(
        field_of(load(&text.replace(
            "num_tree_per_iteration=1\n",
            "num_tree_per_iteration=2\n"
        ))),
        "num_tree_per_iteration"
    );
    assert_eq!(
        field_of(load(
            &text.replace("feature_names=Column_0 ", "feature_names=")
        )),
        "feature_names"
    );
    assert_eq!(
        field_of(load(
            &text.replace("objective=regression", "objective=binary")
        )),
        "objective"
    );
    assert!(matches!(
        load(&text.replace("objective=regression", "objective=survival")),
        Err(LoadError::Unsupported(_))
    ));
    assert!(matches!(
        load(&text.replace("label_index=0\n", "label_index=0\nbad=line=here\n")),
        Err(LoadError::Syntax { line: 6, .. })
    ));
    // No trees at all.
    let header_only = &text[..text.find("Tree=0").expect("tree")];
    assert!(matches!(
        load(&format!("{header_only}end of trees\n")),
        Err(LoadError::Unsupported(_))
    ));
    // Multiclass: trees must come in whole iterations.
    let multi = fixture("multiclass.txt");
    let cut = multi.find("Tree=11").expect("last tree");
    let end = multi.find("end of trees").expect("end");
    let short: String = format!("{}{}", &multi[..cut], &multi[end..])
        .lines()
        .filter(|l| !l.starts_with("tree_sizes="))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(field_of(load(&short)), "num_tree_per_iteration");
}

#[test]
fn tree_sizes_must_agree_with_the_trees() {
    let text = fixture("regression.txt");
    // Make tree 0 one byte longer without updating `tree_sizes`.
    let edited = text.replacen("shrinkage=1\n", "shrinkage=1 \n", 1);
    assert!(matches!(
        Model::from_text(edited.as_bytes()),
        Err(LoadError::Field { ref field, .. }) if field == "tree_sizes"
    ));
    let fewer = text.replacen("tree_sizes=", "tree_sizes=1 ", 1);
    assert!(matches!(
        Model::from_text(fewer.as_bytes()),
        Err(LoadError::Field { ref field, .. }) if field == "tree_sizes"
    ));
}

#[test]
fn byte_corruption_never_panics() {
    let text = fixture("multiclass.txt").into_bytes();
    let end = text.len();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let replacements = b"0123456789-=. \n\rTe";
    for _ in 0..3000 {
        let mut bytes = text.clone();
        for _ in 0..1 + next() % 3 {
            let at = (next() % end as u64) as usize;
            bytes[at] = replacements[(next() % replacements.len() as u64) as usize];
        }
        if let Ok(model) = Model::from_text(&bytes) {
            // Whatever loads must predict without panicking.
            let row = vec![f64::NAN; model.num_features()];
            let _ = model.predict(&row, 1);
            let row = vec![1e300; model.num_features()];
            let _ = model.predict(&row, 1);
        }
    }
}
