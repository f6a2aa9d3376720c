//! Untrusted model files: every defect must come back as a typed error,
//! never a panic, a hang or a huge allocation.

use std::path::PathBuf;

use mlserver_trees::{LoadError, Model, NodeDefect, TreeDefect};
use serde_json::{json, Value};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(path).expect("fixture exists")
}

/// Loads `name` (a JSON fixture) after `edit` changed its parsed document.
fn edited(name: &str, edit: impl FnOnce(&mut Value)) -> Result<Model, LoadError> {
    let mut doc: Value = serde_json::from_slice(&fixture(name)).expect("valid JSON");
    edit(&mut doc);
    Model::from_json(&serde_json::to_vec(&doc).expect("serializes"))
}

fn tree0(doc: &mut Value) -> &mut Value {
    &mut doc["learner"]["gradient_booster"]["model"]["trees"][0]
}

/// The first internal node of tree 0 whose children are both leaves.
fn lowest_split(doc: &Value) -> usize {
    let tree = &doc["learner"]["gradient_booster"]["model"]["trees"][0];
    let left = tree["left_children"].as_array().expect("array");
    (0..left.len())
        .find(|&i| {
            let l = left[i].as_i64().expect("int");
            l >= 0 && left[l as usize] == -1 && left[l as usize + 1] == -1
        })
        .expect("a split above two leaves")
}

fn node_defect(result: Result<Model, LoadError>) -> (usize, usize, NodeDefect) {
    match result {
        Err(LoadError::Node { tree, node, defect }) => (tree, node, defect),
        other => panic!("expected a node error, got {other:?}"),
    }
}

#[test]
fn the_unedited_fixture_loads() {
    edited("squarederror.json", |_| {}).expect("loads");
}

#[test]
fn child_index_out_of_range() {
    let r = edited("squarederror.json", |d| {
        tree0(d)["left_children"][0] = json!(999);
        tree0(d)["right_children"][0] = json!(1000);
    });
    assert_eq!(node_defect(r), (0, 0, NodeDefect::ChildOutOfRange(999)));
    let r = edited("squarederror.json", |d| {
        tree0(d)["left_children"][0] = json!(-7)
    });
    assert_eq!(node_defect(r), (0, 0, NodeDefect::ChildOutOfRange(-7)));
}

#[test]
fn cycle_back_to_the_root() {
    let r = edited("squarederror.json", |d| {
        let leaf = {
            let l = tree0(d)["left_children"].as_array().expect("array");
            l.iter().position(|v| v == -1).expect("a leaf")
        };
        tree0(d)["left_children"][leaf] = json!(0);
        tree0(d)["right_children"][leaf] = json!(1);
    });
    let (tree, node, defect) = node_defect(r);
    assert_eq!((tree, defect), (0, NodeDefect::ReachedTwice));
    assert!(node <= 1);
}

#[test]
fn shared_subtree() {
    // Two splits pointing at the same pair of children.
    let r = edited("squarederror.json", |d| {
        let t = tree0(d);
        let (l1, l2) = (t["left_children"][1].clone(), t["left_children"][2].clone());
        assert!(l1 != -1 && l2 != -1, "depth >= 2");
        t["left_children"][2] = l1.clone();
        t["right_children"][2] = json!(l1.as_i64().expect("int") + 1);
    });
    // Whichever split is walked first claims the pair; the other is caught
    // by the parent check or as a second visit, depending on the order.
    let defect = node_defect(r).2;
    assert!(
        matches!(
            defect,
            NodeDefect::ReachedTwice | NodeDefect::ParentMismatch { .. }
        ),
        "{defect:?}"
    );
}

#[test]
fn right_child_must_follow_left() {
    let r = edited("squarederror.json", |d| {
        tree0(d)["right_children"][0] = json!(1)
    });
    assert_eq!(
        node_defect(r),
        (0, 0, NodeDefect::ChildrenNotAdjacent { left: 1, right: 1 })
    );
}

#[test]
fn parent_links_must_agree() {
    let r = edited("squarederror.json", |d| tree0(d)["parents"][2] = json!(1));
    assert_eq!(
        node_defect(r),
        (
            0,
            0,
            NodeDefect::ParentMismatch {
                child: 2,
                recorded: 1
            }
        )
    );
}

#[test]
fn feature_index_out_of_range() {
    let r = edited("squarederror.json", |d| {
        tree0(d)["split_indices"][0] = json!(8)
    });
    assert_eq!(
        node_defect(r),
        (
            0,
            0,
            NodeDefect::FeatureOutOfRange {
                index: 8,
                num_feature: 8
            }
        )
    );
    let r = edited("squarederror.json", |d| {
        tree0(d)["split_indices"][0] = json!(-1)
    });
    assert!(matches!(
        node_defect(r).2,
        NodeDefect::FeatureOutOfRange { .. }
    ));
}

#[test]
fn a_bad_node_in_a_later_tree_is_named() {
    let r = edited("squarederror.json", |d| {
        let node = lowest_split(d);
        let t = &mut d["learner"]["gradient_booster"]["model"]["trees"][2];
        t["split_indices"][node] = json!(42);
        t["split_indices"][0] = json!(42);
    });
    let (tree, node, _) = node_defect(r);
    assert_eq!((tree, node), (2, 0));
}

#[test]
fn unreachable_nodes_are_not_validated() {
    // XGBoost keeps pruned nodes in the arrays with garbage split indices.
    let r = edited("squarederror.json", |d| {
        let t = tree0(d);
        let n = t["left_children"].as_array().expect("array").len();
        for field in [
            "left_children",
            "right_children",
            "parents",
            "split_indices",
        ] {
            t[field]
                .as_array_mut()
                .expect("array")
                .push(json!(2147483647));
        }
        for field in [
            "split_conditions",
            "base_weights",
            "loss_changes",
            "sum_hessian",
        ] {
            t[field].as_array_mut().expect("array").push(json!(0.0));
        }
        t["default_left"]
            .as_array_mut()
            .expect("array")
            .push(json!(1));
        t["split_type"]
            .as_array_mut()
            .expect("array")
            .push(json!(0));
        t["tree_param"]["num_nodes"] = json!((n + 1).to_string());
    });
    r.expect("an unreachable node does not matter");
}

#[test]
fn array_lengths_must_match_num_nodes() {
    for field in [
        "left_children",
        "parents",
        "split_conditions",
        "default_left",
        "base_weights",
    ] {
        let r = edited("squarederror.json", |d| {
            tree0(d)[field].as_array_mut().expect("array").pop();
        });
        match r {
            Err(LoadError::Tree {
                tree: 0,
                defect: TreeDefect::ArrayLength { field: f, .. },
            }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    let r = edited("squarederror.json", |d| {
        tree0(d)["tree_param"]["num_nodes"] = json!("0");
    });
    assert!(matches!(
        r,
        Err(LoadError::Tree {
            defect: TreeDefect::NodeCount,
            ..
        })
    ));
}

#[test]
fn categorical_tables_are_checked() {
    edited("categorical.json", |_| {}).expect("loads");
    let r = edited("categorical.json", |d| {
        tree0(d)["categories_sizes"][0] = json!(1000)
    });
    assert!(matches!(
        r,
        Err(LoadError::Tree {
            defect: TreeDefect::Categories(_),
            ..
        })
    ));
    let r = edited("categorical.json", |d| {
        tree0(d)["categories"][0] = json!(-3)
    });
    assert!(matches!(node_defect(r).2, NodeDefect::NegativeCategory(-3)));
    let r = edited("categorical.json", |d| {
        tree0(d)["categories_nodes"] = json!([]);
        tree0(d)["categories_segments"] = json!([]);
        tree0(d)["categories_sizes"] = json!([]);
    });
    assert_eq!(node_defect(r).2, NodeDefect::MissingCategories);
    let r = edited("categorical.json", |d| tree0(d)["split_type"][0] = json!(7));
    assert_eq!(node_defect(r), (0, 0, NodeDefect::SplitType(7)));
}

#[test]
fn model_level_fields_are_checked() {
    let r = edited("squarederror.json", |d| {
        d["learner"]["gradient_booster"]["model"]["tree_info"][0] = json!(5);
    });
    assert!(matches!(r, Err(LoadError::Field { .. })), "{r:?}");
    let r = edited("softprob.json", |d| {
        d["learner"]["learner_model_param"]["base_score"] = json!("[1E0,2E0]");
    });
    assert!(matches!(r, Err(LoadError::Field { .. })), "{r:?}");
    let r = edited("squarederror.json", |d| {
        d["learner"]["gradient_booster"]["model"]["gbtree_model_param"]["num_trees"] = json!("5");
    });
    assert!(matches!(r, Err(LoadError::Field { .. })), "{r:?}");
    let r = edited("squarederror.json", |d| {
        d["learner"]["gradient_booster"]["model"]["trees"][1]["id"] = json!(0);
    });
    assert!(
        matches!(
            r,
            Err(LoadError::Tree {
                defect: TreeDefect::Id,
                ..
            })
        ),
        "{r:?}"
    );
    let r = edited("squarederror.json", |d| {
        d["learner"]["gradient_booster"]["model"]["iteration_indptr"] = json!([0, 2, 1, 3]);
    });
    assert!(matches!(r, Err(LoadError::Field { .. })), "{r:?}");
    let r = edited("dart.json", |d| {
        d["learner"]["gradient_booster"]["weight_drop"]
            .as_array_mut()
            .expect("array")
            .pop();
    });
    assert!(matches!(r, Err(LoadError::Field { .. })), "{r:?}");
}

#[test]
fn old_files_without_indptr_or_categories_still_load() {
    let bytes = fixture("softprob.json");
    let reference = Model::from_json(&bytes).expect("loads");
    let model = edited("softprob.json", |d| {
        let m = &mut d["learner"]["gradient_booster"]["model"];
        m.as_object_mut()
            .expect("object")
            .remove("iteration_indptr");
        for t in m["trees"].as_array_mut().expect("array") {
            let t = t.as_object_mut().expect("object");
            for k in [
                "split_type",
                "categories",
                "categories_nodes",
                "categories_segments",
                "categories_sizes",
            ] {
                t.remove(k);
            }
        }
        d["learner"]["learner_model_param"]["base_score"] = json!("5E-1");
    })
    .expect("loads");
    assert_eq!(model.rounds(), reference.rounds());
    assert_eq!(model.base_score(), &[0.5, 0.5, 0.5]);
}

#[test]
fn unsupported_models_are_refused_clearly() {
    let unsupported = |r: Result<Model, LoadError>| match r {
        Err(LoadError::Unsupported(why)) => why,
        other => panic!("expected Unsupported, got {other:?}"),
    };
    let why = unsupported(edited("squarederror.json", |d| {
        d["learner"]["gradient_booster"] = json!({"name": "gblinear", "model": {"weights": [0.0]}});
    }));
    assert!(why.contains("gblinear"));
    unsupported(edited("squarederror.json", |d| {
        d["learner"]["objective"]["name"] = json!("survival:aft");
    }));
    unsupported(edited("squarederror.json", |d| {
        tree0(d)["tree_param"]["size_leaf_vector"] = json!("2");
    }));
    // XGBoost's legacy binary format, with and without its "binf" magic.
    let why = unsupported(Model::from_bytes(b"binf\0\0\0\x3f\x08\0\0\0"));
    assert!(why.contains("legacy binary"));
    unsupported(Model::from_bytes(&[0, 0, 0, 0x3f, 8, 0, 0, 0, 0, 0, 0, 0]));
    unsupported(Model::from_bytes(b"{\x00\x01"));
}

#[test]
fn truncated_files_are_errors() {
    for name in ["categorical.json", "dart.ubj", "softmax.ubj"] {
        let bytes = fixture(name);
        for len in (0..bytes.len()).step_by(7).chain([bytes.len() - 1]) {
            assert!(
                Model::from_bytes(&bytes[..len]).is_err(),
                "{name} cut at {len}"
            );
        }
    }
}

#[test]
fn huge_declared_ubjson_count_is_an_error() {
    let mut bytes = fixture("squarederror.ubj");
    let at = bytes
        .windows(5)
        .position(|w| w == b"[$d#L")
        .expect("a typed float array");
    bytes[at + 5..at + 13].copy_from_slice(&(1i64 << 60).to_be_bytes());
    assert!(matches!(
        Model::from_bytes(&bytes),
        Err(LoadError::Syntax { .. })
    ));
    bytes[at + 5..at + 13].copy_from_slice(&(-5i64).to_be_bytes());
    assert!(matches!(
        Model::from_bytes(&bytes),
        Err(LoadError::Syntax { .. })
    ));
}

/// Byte flips and splices of a real UBJSON model: whatever loads must also
/// predict without panicking.
#[test]
fn corrupted_ubjson_never_panics() {
    let original = fixture("categorical.ubj");
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..3000 {
        let mut bytes = original.clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() % bytes.len() as u64) as usize;
            bytes[at] = next() as u8;
        }
        if let Ok(model) = Model::from_bytes(&bytes) {
            for fill in [f32::NAN, 0.0, 3.0, -1.0, 1e30] {
                let row = vec![fill; model.num_features()];
                let _ = model.predict(&row, 1);
            }
        }
    }
}
