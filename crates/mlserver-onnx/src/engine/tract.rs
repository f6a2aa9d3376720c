//! tract: the pure-Rust engine, built by default.
//!
//! The graph is typed and optimised once at load, for symbolic dynamic
//! dimensions (the batch is the symbol `N`), so any batch size runs on the
//! same optimised plan; each request gets its own plan state, so concurrent
//! requests share nothing mutable.

use std::path::Path;
use std::sync::Arc;

use mlserver_types::{f16, Tensor, TensorData};
use tract_onnx::pb;
use tract_onnx::prelude::{
    Datum, DatumType, InferenceFact, InferenceModelExt, IntoRunnable, IntoTValue, TDim, TValue,
    TVec, Tensor as TractTensor, ToDim, TypedRunnableModel,
};

use super::contract::{utf8_strings, Engine, Output};
use crate::signature::{Dim, Signature};
use crate::OnnxError;

const NAME: &str = "tract";

/// A graph optimised by tract.
pub struct TractEngine {
    plan: Arc<TypedRunnableModel>,
    /// The graph's declared output types: tract may compute an output in a
    /// type of its own (labels of some tree ensembles come out as `TDim`),
    /// which is cast back to what the graph declares.
    outputs: Vec<DatumType>,
}

impl std::fmt::Debug for TractEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TractEngine").finish_non_exhaustive()
    }
}

fn load_error(e: impl std::fmt::Display) -> OnnxError {
    OnnxError::EngineLoad {
        engine: NAME,
        message: e.to_string(),
    }
}

/// A name tract accepts as a symbol (`dim_param`s may hold anything).
fn symbol_name(param: &str) -> String {
    let mut s: String = param
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if !s.starts_with(|c: char| c.is_ascii_alphabetic()) {
        s.insert(0, 'd');
    }
    s
}

impl TractEngine {
    /// Parses, types and optimises the graph for the signature's input facts.
    pub fn load(
        path: &Path,
        proto: &pb::ModelProto,
        signature: &Signature,
    ) -> Result<Self, OnnxError> {
        let mut onnx = tract_onnx::onnx();
        super::ml::register(&mut onnx.op_register);
        // The model's folder resolves external data files.
        let dir = path.parent().and_then(Path::to_str);
        let mut model = onnx
            .parse(proto, dir)
            .map_err(|e| load_error(format!("{e:#}")))?
            .model;
        for (ix, spec) in signature.inputs.iter().enumerate() {
            let dt = datum_type(spec.datatype).ok_or_else(|| {
                load_error(format!(
                    "input '{}' is {}, which tract does not support",
                    spec.name, spec.datatype
                ))
            })?;
            let dims: TVec<TDim> = spec
                .dims
                .iter()
                .enumerate()
                .map(|(axis, d)| match d {
                    Dim::Fixed(n) => n.to_dim(),
                    Dim::Dynamic(Some(p)) => model.sym(&symbol_name(p)).to_dim(),
                    Dim::Dynamic(None) => model
                        .sym(&format!("{}_{axis}", symbol_name(&spec.name)))
                        .to_dim(),
                })
                .collect();
            model
                .set_input_fact(ix, InferenceFact::dt_shape(dt, dims))
                .map_err(load_error)?;
        }
        let optimized = model
            .into_optimized()
            .map_err(|e| load_error(format!("{e:#}")))?;
        let plan = optimized
            .into_runnable()
            .map_err(|e| load_error(format!("{e:#}")))?;
        let outputs = signature
            .outputs
            .iter()
            .map(|spec| {
                datum_type(spec.datatype).ok_or_else(|| {
                    load_error(format!(
                        "output '{}' is {}, which tract does not support",
                        spec.name, spec.datatype
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(TractEngine { plan, outputs })
    }
}

impl Engine for TractEngine {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Output>, OnnxError> {
        let values: TVec<TValue> = inputs
            .into_iter()
            .map(|t| to_tract(t).map(IntoTValue::into_tvalue))
            .collect::<Result<_, _>>()?;
        let outputs = self.plan.run(values).map_err(|e| OnnxError::Run {
            engine: NAME,
            message: format!("{e:#}"),
        })?;
        outputs
            .iter()
            .zip(&self.outputs)
            .map(|(v, &declared)| {
                if v.datum_type() == declared {
                    from_tract(v)
                } else {
                    let cast = v.cast_to_dt(declared).map_err(|e| OnnxError::Run {
                        engine: NAME,
                        message: format!(
                            "an output computed as {:?} cannot be cast to the declared {declared:?}: {e:#}",
                            v.datum_type()
                        ),
                    })?;
                    from_tract(&cast)
                }
            })
            .collect()
    }
}

/// The tract datum type of a V2 datatype; `None` for BF16, which tract lacks.
fn datum_type(datatype: mlserver_types::Datatype) -> Option<DatumType> {
    use mlserver_types::Datatype as D;
    Some(match datatype {
        D::Bool => DatumType::Bool,
        D::Uint8 => DatumType::U8,
        D::Uint16 => DatumType::U16,
        D::Uint32 => DatumType::U32,
        D::Uint64 => DatumType::U64,
        D::Int8 => DatumType::I8,
        D::Int16 => DatumType::I16,
        D::Int32 => DatumType::I32,
        D::Int64 => DatumType::I64,
        D::Fp16 => DatumType::F16,
        D::Fp32 => DatumType::F32,
        D::Fp64 => DatumType::F64,
        D::Bytes => DatumType::String,
        D::Bf16 => return None,
    })
}

fn bad(e: impl std::fmt::Display) -> OnnxError {
    OnnxError::BadInput(e.to_string())
}

fn to_tract(t: Tensor) -> Result<TractTensor, OnnxError> {
    fn plain<T: Datum + Copy>(shape: &[usize], v: &[T]) -> Result<TractTensor, OnnxError> {
        TractTensor::from_shape(shape, v).map_err(bad)
    }
    let shape = t.shape;
    match t.data {
        TensorData::Bool(v) => plain(&shape, &v),
        TensorData::Uint8(v) => plain(&shape, &v),
        TensorData::Uint16(v) => plain(&shape, &v),
        TensorData::Uint32(v) => plain(&shape, &v),
        TensorData::Uint64(v) => plain(&shape, &v),
        TensorData::Int8(v) => plain(&shape, &v),
        TensorData::Int16(v) => plain(&shape, &v),
        TensorData::Int32(v) => plain(&shape, &v),
        TensorData::Int64(v) => plain(&shape, &v),
        TensorData::Fp16(v) => plain::<f16>(&shape, &v),
        TensorData::Fp32(v) => plain(&shape, &v),
        TensorData::Fp64(v) => plain(&shape, &v),
        TensorData::Bytes(v) => {
            let strings = utf8_strings(&t.name, v)?;
            tract_onnx::prelude::tract_ndarray::ArrayD::from_shape_vec(shape, strings)
                .map(TractTensor::from)
                .map_err(bad)
        }
        TensorData::Bf16(_) => Err(bad(format!(
            "input '{}' is BF16, which tract cannot take",
            t.name
        ))),
    }
}

fn from_tract(t: &TractTensor) -> Result<Output, OnnxError> {
    fn collect<T: Datum + Clone>(t: &TractTensor) -> Result<Vec<T>, OnnxError> {
        Ok(t.to_plain_array_view::<T>()
            .map_err(|e| OnnxError::Run {
                engine: NAME,
                message: format!("reading an output: {e:#}"),
            })?
            .iter()
            .cloned()
            .collect())
    }
    let data: TensorData = match t.datum_type() {
        DatumType::Bool => collect::<bool>(t)?.into(),
        DatumType::U8 => collect::<u8>(t)?.into(),
        DatumType::U16 => collect::<u16>(t)?.into(),
        DatumType::U32 => collect::<u32>(t)?.into(),
        DatumType::U64 => collect::<u64>(t)?.into(),
        DatumType::I8 => collect::<i8>(t)?.into(),
        DatumType::I16 => collect::<i16>(t)?.into(),
        DatumType::I32 => collect::<i32>(t)?.into(),
        DatumType::I64 => collect::<i64>(t)?.into(),
        DatumType::F16 => collect::<f16>(t)?.into(),
        DatumType::F32 => collect::<f32>(t)?.into(),
        DatumType::F64 => collect::<f64>(t)?.into(),
        DatumType::String => collect::<String>(t)?.into(),
        other => {
            return Err(OnnxError::Run {
                engine: NAME,
                message: format!("an output has tract type {other:?}, which has no V2 datatype"),
            })
        }
    };
    Ok(Output {
        shape: t.shape().to_vec(),
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbol_names_are_identifiers() {
        assert_eq!(symbol_name("batch"), "batch");
        assert_eq!(symbol_name("batch size"), "batch_size");
        assert_eq!(symbol_name("1x"), "d1x");
    }

    #[test]
    fn tensors_round_trip_through_tract() {
        let t = Tensor::new("x", vec![2, 2], vec![1f32, 2., 3., 4.]).unwrap();
        let out = from_tract(&to_tract(t).unwrap()).unwrap();
        assert_eq!(out.shape, vec![2, 2]);
        assert_eq!(out.data, TensorData::Fp32(vec![1., 2., 3., 4.]));
        let s = Tensor::new("s", vec![2], vec!["a", "é"]).unwrap();
        let out = from_tract(&to_tract(s).unwrap()).unwrap();
        assert_eq!(out.data, vec!["a", "é"].into());
        let bad = Tensor::new("s", vec![1], TensorData::Bytes(vec![vec![0xff]])).unwrap();
        assert!(matches!(to_tract(bad), Err(OnnxError::BadInput(_))));
    }
}
