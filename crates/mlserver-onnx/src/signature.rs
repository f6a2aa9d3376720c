//! The graph's inputs and outputs, read from the ONNX protobuf itself.
//!
//! Both engines see the same signature, and it is what clients see in the
//! model's metadata and what requests are checked against before any engine
//! runs: a wrong datatype, rank or fixed dimension is a 400 naming the input,
//! never an engine error.

use std::collections::HashMap;

use mlserver_types::{Datatype, MetadataTensor, Tensor};
use tract_onnx::pb;

use crate::OnnxError;

/// The symbol (tract) or free dimension name every input's first dynamic
/// axis shares: the batch. Unnamed leading dimensions are taken to be the
/// same batch, as every converter of classical models writes them.
pub const BATCH: &str = "N";

/// One dimension of a declared shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size.
    Fixed(usize),
    /// A size known only at run time: a named `dim_param` (dimensions with
    /// the same name must agree across inputs), or unnamed.
    Dynamic(Option<String>),
}

/// An input or output of the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    /// The name in the graph.
    pub name: String,
    /// The V2 datatype of its elements.
    pub datatype: Datatype,
    /// Its declared shape.
    pub dims: Vec<Dim>,
}

impl TensorSpec {
    /// The V2 shape: dynamic dimensions are `-1`.
    pub fn v2_shape(&self) -> Vec<i64> {
        self.dims
            .iter()
            .map(|d| match d {
                Dim::Fixed(n) => *n as i64,
                Dim::Dynamic(_) => -1,
            })
            .collect()
    }

    /// This tensor as it appears in the model's V2 metadata.
    pub fn metadata(&self) -> MetadataTensor {
        MetadataTensor::new(self.name.clone(), self.datatype, self.v2_shape())
    }
}

/// The inputs (initializers excluded) and outputs of a graph, in graph order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The inputs a request must send.
    pub inputs: Vec<TensorSpec>,
    /// The outputs a run returns.
    pub outputs: Vec<TensorSpec>,
}

impl Signature {
    /// Reads the signature of `model`'s main graph.
    pub fn from_proto(model: &pb::ModelProto) -> Result<Self, OnnxError> {
        let graph = model
            .graph
            .as_ref()
            .ok_or_else(|| OnnxError::Signature("the file holds no graph".into()))?;
        // Before IR version 4 initializers were also listed as inputs; they
        // have defaults and are not the caller's to send.
        let initializers: std::collections::HashSet<&str> =
            graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let inputs = graph
            .input
            .iter()
            .filter(|v| !initializers.contains(v.name.as_str()))
            .map(|v| spec(v, "input"))
            .collect::<Result<Vec<_>, _>>()?;
        let outputs = graph
            .output
            .iter()
            .map(|v| spec(v, "output"))
            .collect::<Result<Vec<_>, _>>()?;
        if inputs.is_empty() {
            return Err(OnnxError::Signature("the graph has no inputs".into()));
        }
        if outputs.is_empty() {
            return Err(OnnxError::Signature("the graph has no outputs".into()));
        }
        Ok(Signature { inputs, outputs })
    }

    /// Pairs each graph input with the request tensor that feeds it, after
    /// checking datatype, rank, fixed dimensions and that named dynamic
    /// dimensions agree across inputs.
    ///
    /// Inputs are matched by name. A single-input model also takes a single
    /// request tensor under any name (MLServer's scikit-learn runtime ignores
    /// the name too), so `tritonclient` users need not know it.
    pub fn bind<'r>(&self, inputs: &'r [Tensor]) -> Result<Vec<&'r Tensor>, OnnxError> {
        let bound: Vec<&Tensor> = if self.inputs.len() == 1 && inputs.len() == 1 {
            vec![&inputs[0]]
        } else {
            for t in inputs {
                if !self.inputs.iter().any(|s| s.name == t.name) {
                    return Err(OnnxError::BadInput(format!(
                        "unknown input '{}'; the model's inputs are {}",
                        t.name,
                        self.input_names()
                    )));
                }
            }
            self.inputs
                .iter()
                .map(|s| {
                    inputs.iter().find(|t| t.name == s.name).ok_or_else(|| {
                        OnnxError::BadInput(format!(
                            "missing input '{}'; the model's inputs are {}",
                            s.name,
                            self.input_names()
                        ))
                    })
                })
                .collect::<Result<_, _>>()?
        };
        let mut named: HashMap<&str, (usize, &str)> = HashMap::new();
        for (spec, tensor) in self.inputs.iter().zip(&bound) {
            if tensor.datatype != spec.datatype {
                return Err(OnnxError::BadInput(format!(
                    "input '{}' has datatype {} but the model expects {}",
                    tensor.name, tensor.datatype, spec.datatype
                )));
            }
            let shape_error = || {
                OnnxError::BadInput(format!(
                    "input '{}' has shape {:?} but the model expects {:?} (-1: any size)",
                    tensor.name,
                    tensor.shape,
                    spec.v2_shape()
                ))
            };
            if tensor.shape.len() != spec.dims.len() {
                return Err(shape_error());
            }
            for (dim, &got) in spec.dims.iter().zip(&tensor.shape) {
                match dim {
                    Dim::Fixed(n) if *n != got => return Err(shape_error()),
                    Dim::Dynamic(Some(param)) => match named.get(param.as_str()) {
                        Some(&(seen, other)) if seen != got => {
                            return Err(OnnxError::BadInput(format!(
                                "dimension '{param}' is {seen} in input '{other}' but {got} in input '{}'",
                                tensor.name
                            )))
                        }
                        Some(_) => {}
                        None => {
                            named.insert(param, (got, tensor.name.as_str()));
                        }
                    },
                    _ => {}
                }
            }
        }
        Ok(bound)
    }

    fn input_names(&self) -> String {
        self.inputs
            .iter()
            .map(|s| format!("'{}'", s.name))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn spec(value: &pb::ValueInfoProto, role: &str) -> Result<TensorSpec, OnnxError> {
    use pb::type_proto::Value;
    // The protobuf schema tract compiles knows only tensor types: a sequence,
    // a map (ZipMap's output) or an optional arrives without a value.
    let Some(Value::TensorType(tensor)) = value.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Err(OnnxError::Signature(format!(
            "{role} '{}' is not a tensor (a sequence, map or optional?), which the V2 \
             protocol cannot carry; a scikit-learn classifier exported with ZipMap has such \
             an output: re-export it with options={{id(clf): {{'zipmap': False}}}}",
            value.name
        )));
    };
    let datatype = datatype_of(tensor.elem_type).ok_or_else(|| {
        OnnxError::Signature(format!(
            "{role} '{}' has ONNX element type {} ({}), which has no V2 datatype",
            value.name,
            tensor.elem_type,
            onnx_type_name(tensor.elem_type)
        ))
    })?;
    let dims = match &tensor.shape {
        Some(shape) => shape
            .dim
            .iter()
            .enumerate()
            .map(|(axis, d)| {
                use pb::tensor_shape_proto::dimension::Value as D;
                match &d.value {
                    Some(D::DimValue(n)) if *n >= 0 => Dim::Fixed(*n as usize),
                    Some(D::DimParam(p)) if !p.is_empty() => Dim::Dynamic(Some(p.clone())),
                    // An unnamed leading dimension is the batch (see BATCH).
                    _ if axis == 0 => Dim::Dynamic(Some(BATCH.into())),
                    _ => Dim::Dynamic(None),
                }
            })
            .collect(),
        None => {
            return Err(OnnxError::Signature(format!(
                "{role} '{}' has no declared shape (not even its rank)",
                value.name
            )))
        }
    };
    Ok(TensorSpec {
        name: value.name.clone(),
        datatype,
        dims,
    })
}

/// ONNX `TensorProto.DataType` to the V2 datatype that carries it.
pub fn datatype_of(elem_type: i32) -> Option<Datatype> {
    Some(match elem_type {
        1 => Datatype::Fp32,
        2 => Datatype::Uint8,
        3 => Datatype::Int8,
        4 => Datatype::Uint16,
        5 => Datatype::Int16,
        6 => Datatype::Int32,
        7 => Datatype::Int64,
        8 => Datatype::Bytes,
        9 => Datatype::Bool,
        10 => Datatype::Fp16,
        11 => Datatype::Fp64,
        12 => Datatype::Uint32,
        13 => Datatype::Uint64,
        16 => Datatype::Bf16,
        _ => return None,
    })
}

fn onnx_type_name(elem_type: i32) -> &'static str {
    match elem_type {
        0 => "UNDEFINED",
        14 => "COMPLEX64",
        15 => "COMPLEX128",
        17..=20 => "FLOAT8",
        21 | 22 => "4-bit integer",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig() -> Signature {
        Signature {
            inputs: vec![
                TensorSpec {
                    name: "a".into(),
                    datatype: Datatype::Fp32,
                    dims: vec![Dim::Dynamic(Some("N".into())), Dim::Fixed(4)],
                },
                TensorSpec {
                    name: "b".into(),
                    datatype: Datatype::Int64,
                    dims: vec![Dim::Dynamic(Some("N".into()))],
                },
            ],
            outputs: vec![TensorSpec {
                name: "y".into(),
                datatype: Datatype::Fp32,
                dims: vec![Dim::Dynamic(None)],
            }],
        }
    }

    fn a(rows: usize, cols: usize) -> Tensor {
        Tensor::new("a", vec![rows, cols], vec![0f32; rows * cols]).unwrap()
    }

    fn b(rows: usize) -> Tensor {
        Tensor::new("b", vec![rows], vec![0i64; rows]).unwrap()
    }

    fn err(r: Result<Vec<&Tensor>, OnnxError>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn binds_by_name_in_graph_order() {
        let s = sig();
        let inputs = [b(2), a(2, 4)];
        let bound = s.bind(&inputs).unwrap();
        assert_eq!(bound[0].name, "a");
        assert_eq!(bound[1].name, "b");
        assert_eq!(s.inputs[0].v2_shape(), vec![-1, 4]);
    }

    #[test]
    fn rejects_what_the_graph_cannot_take() {
        let s = sig();
        assert!(err(s.bind(&[a(2, 4)])).contains("missing input 'b'"));
        let e = err(s.bind(&[
            a(2, 4),
            b(2),
            Tensor::new("c", vec![1], vec![1i64]).unwrap(),
        ]));
        assert!(e.contains("unknown input 'c'"), "{e}");
        let e = err(s.bind(&[a(2, 3), b(2)]));
        assert!(e.contains("shape [2, 3]") && e.contains("[-1, 4]"), "{e}");
        let e = err(s.bind(&[Tensor::new("a", vec![8], vec![0f32; 8]).unwrap(), b(2)]));
        assert!(e.contains("shape [8]"), "{e}");
        let e = err(s.bind(&[Tensor::new("a", vec![1, 4], vec![0f64; 4]).unwrap(), b(1)]));
        assert!(
            e.contains("datatype FP64") && e.contains("expects FP32"),
            "{e}"
        );
        let e = err(s.bind(&[a(2, 4), b(3)]));
        assert!(e.contains("dimension 'N' is 2"), "{e}");
    }

    #[test]
    fn a_single_input_model_takes_any_name() {
        let mut s = sig();
        s.inputs.truncate(1);
        let x = Tensor::new("whatever", vec![1, 4], vec![0f32; 4]).unwrap();
        assert_eq!(
            s.bind(std::slice::from_ref(&x)).unwrap()[0].name,
            "whatever"
        );
    }

    #[test]
    fn onnx_types_map_to_v2_datatypes() {
        assert_eq!(datatype_of(1), Some(Datatype::Fp32));
        assert_eq!(datatype_of(7), Some(Datatype::Int64));
        assert_eq!(datatype_of(8), Some(Datatype::Bytes));
        assert_eq!(datatype_of(9), Some(Datatype::Bool));
        assert_eq!(datatype_of(11), Some(Datatype::Fp64));
        assert_eq!(datatype_of(14), None);
    }
}
