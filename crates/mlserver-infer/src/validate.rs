//! Reading one input line as MLServer's `InferenceRequest.model_validate`
//! does: pydantic 2 in lax mode, every error collected (fields in the order
//! the model declares them), each reported as pydantic's `errors()` lists
//! it. MLServer writes that list into the output file for a line that is
//! JSON but not a valid request, so the wording, the `loc` paths and the
//! echoed `input` values are pydantic's.

use indexmap::IndexMap;
use mlserver_types::Datatype;

use crate::json::Json;

/// The pydantic release MLServer 1.7.1 installs with today; its `errors()`
/// name it in every `url`.
pub(crate) const PYDANTIC_VERSION: &str = "2.14";

/// The datatypes MLServer's `Datatype` enum accepts (no BF16), in its order.
const DATATYPES: [(&str, Datatype); 13] = [
    ("BOOL", Datatype::Bool),
    ("UINT8", Datatype::Uint8),
    ("UINT16", Datatype::Uint16),
    ("UINT32", Datatype::Uint32),
    ("UINT64", Datatype::Uint64),
    ("INT8", Datatype::Int8),
    ("INT16", Datatype::Int16),
    ("INT32", Datatype::Int32),
    ("INT64", Datatype::Int64),
    ("FP16", Datatype::Fp16),
    ("FP32", Datatype::Fp32),
    ("FP64", Datatype::Fp64),
    ("BYTES", Datatype::Bytes),
];

const DATATYPE_EXPECTED: &str = "'BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', \
     'INT16', 'INT32', 'INT64', 'FP16', 'FP32', 'FP64' or 'BYTES'";

/// A valid request line: only what the batch client uses (MLServer sends
/// the inputs and the names of the requested outputs, nothing else).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Request {
    pub(crate) id: Option<String>,
    pub(crate) inputs: Vec<Input>,
    /// `None` when the line has no `outputs`; the names otherwise.
    pub(crate) outputs: Option<Vec<String>>,
}

/// One input of a valid request line; `data` is anything, as MLServer's
/// `TensorData` accepts anything.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Input {
    pub(crate) name: String,
    pub(crate) shape: Vec<i128>,
    pub(crate) datatype: Datatype,
    pub(crate) data: Json,
}

/// One step of an error's `loc`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Loc {
    Field(&'static str),
    Index(usize),
}

/// One entry of pydantic's `errors()`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ErrorDetail {
    pub(crate) kind: &'static str,
    pub(crate) loc: Vec<Loc>,
    pub(crate) msg: String,
    pub(crate) input: Json,
    pub(crate) ctx: Option<Json>,
}

impl ErrorDetail {
    /// The entry as `errors()` gives it: `type`, `loc`, `msg`, `input`,
    /// `ctx` (when there is one), `url`.
    pub(crate) fn to_json(&self) -> Json {
        let mut m = IndexMap::new();
        m.insert("type".into(), Json::Str(self.kind.into()));
        m.insert(
            "loc".into(),
            Json::Array(
                self.loc
                    .iter()
                    .map(|l| match l {
                        Loc::Field(f) => Json::Str((*f).into()),
                        Loc::Index(i) => Json::Int(*i as i128),
                    })
                    .collect(),
            ),
        );
        m.insert("msg".into(), Json::Str(self.msg.clone()));
        m.insert("input".into(), self.input.clone());
        if let Some(ctx) = &self.ctx {
            m.insert("ctx".into(), ctx.clone());
        }
        m.insert(
            "url".into(),
            Json::Str(format!(
                "https://errors.pydantic.dev/{PYDANTIC_VERSION}/v/{}",
                self.kind
            )),
        );
        Json::Object(m)
    }
}

/// pydantic's `repr(ValidationError)`, for the log line MLServer writes.
pub(crate) fn describe(errors: &[ErrorDetail]) -> String {
    let mut s = format!(
        "{} validation error{} for InferenceRequest",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" }
    );
    for e in errors {
        let loc: Vec<String> = e
            .loc
            .iter()
            .map(|l| match l {
                Loc::Field(f) => (*f).to_string(),
                Loc::Index(i) => i.to_string(),
            })
            .collect();
        if !loc.is_empty() {
            s.push('\n');
            s.push_str(&loc.join("."));
        }
        s.push_str(&format!(
            "\n  {} [type={}, input_value={}, input_type={}]\n    For further information visit https://errors.pydantic.dev/{PYDANTIC_VERSION}/v/{}",
            e.msg,
            e.kind,
            e.input.py_repr(),
            e.input.py_type(),
            e.kind
        ));
    }
    s
}

/// Validates one parsed line as an `InferenceRequest`.
pub(crate) fn validate(value: &Json) -> Result<Request, Vec<ErrorDetail>> {
    let mut v = Validator { errors: Vec::new() };
    let request = v.request(value);
    match request {
        Some(r) if v.errors.is_empty() => Ok(r),
        _ => Err(v.errors),
    }
}

struct Validator {
    errors: Vec<ErrorDetail>,
}

fn at(loc: &[Loc], step: Loc) -> Vec<Loc> {
    let mut l = loc.to_vec();
    l.push(step);
    l
}

impl Validator {
    fn error(&mut self, kind: &'static str, loc: Vec<Loc>, msg: &str, input: &Json) {
        self.errors.push(ErrorDetail {
            kind,
            loc,
            msg: msg.into(),
            input: input.clone(),
            ctx: None,
        });
    }

    fn model<'a>(
        &mut self,
        value: &'a Json,
        loc: &[Loc],
        class: &str,
    ) -> Option<&'a IndexMap<String, Json>> {
        match value {
            Json::Object(m) => Some(m),
            other => {
                let mut ctx = IndexMap::new();
                ctx.insert("class_name".into(), Json::Str(class.into()));
                self.errors.push(ErrorDetail {
                    kind: "model_type",
                    loc: loc.to_vec(),
                    msg: format!("Input should be a valid dictionary or instance of {class}"),
                    input: other.clone(),
                    ctx: Some(Json::Object(ctx)),
                });
                None
            }
        }
    }

    /// A required field: `None` (after recording `missing`) when absent.
    fn required<'a>(
        &mut self,
        obj: &'a IndexMap<String, Json>,
        parent: &Json,
        loc: &[Loc],
        field: &'static str,
    ) -> Option<&'a Json> {
        let v = obj.get(field);
        if v.is_none() {
            self.error(
                "missing",
                at(loc, Loc::Field(field)),
                "Field required",
                parent,
            );
        }
        v
    }

    fn string(&mut self, value: &Json, loc: Vec<Loc>) -> Option<String> {
        match value {
            Json::Str(s) => Some(s.clone()),
            other => {
                self.error("string_type", loc, "Input should be a valid string", other);
                None
            }
        }
    }

    fn optional_string(&mut self, value: Option<&Json>, loc: Vec<Loc>) -> Option<Option<String>> {
        match value {
            None | Some(Json::Null) => Some(None),
            Some(v) => self.string(v, loc).map(Some),
        }
    }

    fn list<'a>(&mut self, value: &'a Json, loc: Vec<Loc>) -> Option<&'a [Json]> {
        match value {
            Json::Array(items) => Some(items),
            other => {
                self.error("list_type", loc, "Input should be a valid list", other);
                None
            }
        }
    }

    /// pydantic's lax `int`: integers, booleans, integral floats and
    /// strings that read as integers.
    fn int(&mut self, value: &Json, loc: Vec<Loc>) -> Option<i128> {
        const TOO_BIG: &str = "Unable to parse input string as an integer, exceeded maximum size";
        match value {
            Json::Int(i) => Some(*i),
            Json::Bool(b) => Some(i128::from(*b)),
            Json::Float(f) => {
                if f.fract() != 0.0 {
                    self.error(
                        "int_from_float",
                        loc,
                        "Input should be a valid integer, got a number with a fractional part",
                        value,
                    );
                    None
                } else if f.abs() >= 9.223_372_036_854_776e18 {
                    self.error("int_parsing_size", loc, TOO_BIG, value);
                    None
                } else {
                    Some(*f as i128)
                }
            }
            Json::Str(s) => match parse_lax_int(s) {
                Some(i) => Some(i),
                None => {
                    self.error(
                        "int_parsing",
                        loc,
                        "Input should be a valid integer, unable to parse string as an integer",
                        value,
                    );
                    None
                }
            },
            other => {
                self.error("int_type", loc, "Input should be a valid integer", other);
                None
            }
        }
    }

    fn datatype(&mut self, value: &Json, loc: Vec<Loc>) -> Option<Datatype> {
        if let Json::Str(s) = value {
            if let Some((_, dt)) = DATATYPES.iter().find(|(n, _)| n == s) {
                return Some(*dt);
            }
        }
        let mut ctx = IndexMap::new();
        ctx.insert("expected".into(), Json::Str(DATATYPE_EXPECTED.into()));
        self.errors.push(ErrorDetail {
            kind: "enum",
            loc,
            msg: format!("Input should be {DATATYPE_EXPECTED}"),
            input: value.clone(),
            ctx: Some(Json::Object(ctx)),
        });
        None
    }

    /// `Optional[Parameters]`: validated, not kept (MLServer's batch client
    /// does not send parameters).
    fn parameters(&mut self, value: Option<&Json>, loc: Vec<Loc>) -> bool {
        let Some(value) = value else { return true };
        if matches!(value, Json::Null) {
            return true;
        }
        let before = self.errors.len();
        if let Some(obj) = self.model(value, &loc, "Parameters") {
            self.optional_string(
                obj.get("content_type"),
                at(&loc, Loc::Field("content_type")),
            );
            match obj.get("headers") {
                None | Some(Json::Null) | Some(Json::Object(_)) => {}
                Some(other) => self.error(
                    "dict_type",
                    at(&loc, Loc::Field("headers")),
                    "Input should be a valid dictionary",
                    other,
                ),
            }
        }
        self.errors.len() == before
    }

    fn request(&mut self, value: &Json) -> Option<Request> {
        let obj = self.model(value, &[], "InferenceRequest")?;
        let id = self.optional_string(obj.get("id"), vec![Loc::Field("id")]);
        self.parameters(obj.get("parameters"), vec![Loc::Field("parameters")]);
        let inputs = self
            .required(obj, value, &[], "inputs")
            .and_then(|v| self.list(v, vec![Loc::Field("inputs")]))
            .map(|items| {
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.input(item, i))
                    .collect::<Vec<_>>()
            });
        let outputs = match obj.get("outputs") {
            None | Some(Json::Null) => Some(None),
            Some(v) => self
                .list(v, vec![Loc::Field("outputs")])
                .map(|items| {
                    // Every element is checked (and its errors recorded)
                    // before any failure counts.
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| self.output(item, i))
                        .collect::<Vec<_>>()
                })
                .and_then(|o| o.into_iter().collect::<Option<Vec<_>>>())
                .map(Some),
        };
        let inputs = inputs?.into_iter().collect::<Option<Vec<_>>>()?;
        Some(Request {
            id: id?,
            inputs,
            outputs: outputs?,
        })
    }

    fn input(&mut self, value: &Json, index: usize) -> Option<Input> {
        let loc = vec![Loc::Field("inputs"), Loc::Index(index)];
        let obj = self.model(value, &loc, "RequestInput")?;
        let name = self
            .required(obj, value, &loc, "name")
            .and_then(|v| self.string(v, at(&loc, Loc::Field("name"))));
        let shape = self
            .required(obj, value, &loc, "shape")
            .and_then(|v| self.list(v, at(&loc, Loc::Field("shape"))))
            .map(|dims| {
                let shape_loc = at(&loc, Loc::Field("shape"));
                dims.iter()
                    .enumerate()
                    .map(|(i, d)| self.int(d, at(&shape_loc, Loc::Index(i))))
                    .collect::<Vec<_>>()
            });
        let datatype = self
            .required(obj, value, &loc, "datatype")
            .and_then(|v| self.datatype(v, at(&loc, Loc::Field("datatype"))));
        let params_ok = self.parameters(obj.get("parameters"), at(&loc, Loc::Field("parameters")));
        let data = self.required(obj, value, &loc, "data").cloned();
        let shape = shape?.into_iter().collect::<Option<Vec<_>>>()?;
        if !params_ok {
            return None;
        }
        Some(Input {
            name: name?,
            shape,
            datatype: datatype?,
            data: data?,
        })
    }

    fn output(&mut self, value: &Json, index: usize) -> Option<String> {
        let loc = vec![Loc::Field("outputs"), Loc::Index(index)];
        let obj = self.model(value, &loc, "RequestOutput")?;
        let name = self
            .required(obj, value, &loc, "name")
            .and_then(|v| self.string(v, at(&loc, Loc::Field("name"))));
        let params_ok = self.parameters(obj.get("parameters"), at(&loc, Loc::Field("parameters")));
        if !params_ok {
            return None;
        }
        name
    }
}

/// pydantic's lax string-to-int: surrounding whitespace, a sign,
/// underscores between digits, and a fractional part of zeros are allowed.
fn parse_lax_int(s: &str) -> Option<i128> {
    let s = s.trim();
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (int_part, frac) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    if let Some(f) = frac {
        if !f.bytes().all(|b| b == b'0') {
            return None;
        }
    }
    if int_part.is_empty()
        || int_part.starts_with('_')
        || int_part.ends_with('_')
        || int_part.contains("__")
    {
        return None;
    }
    let digits: String = int_part.chars().filter(|c| *c != '_').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 38 {
        return None;
    }
    let n: i128 = digits.parse().ok()?;
    Some(if neg { -n } else { n })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_of(line: &str) -> String {
        let v = Json::parse(line.as_bytes()).unwrap();
        let errs = validate(&v).unwrap_err();
        Json::Array(errs.iter().map(ErrorDetail::to_json).collect()).py_dumps()
    }

    // Each expected list is what `json.dumps(e.errors())` printed for the
    // same line with MLServer 1.7.1 and pydantic 2.14.

    #[test]
    fn a_list_where_inputs_belong() {
        assert_eq!(
            errors_of(r#"{"inputs": "nope"}"#),
            r#"[{"type": "list_type", "loc": ["inputs"], "msg": "Input should be a valid list", "input": "nope", "url": "https://errors.pydantic.dev/2.14/v/list_type"}]"#
        );
    }

    #[test]
    fn not_an_object() {
        assert_eq!(
            errors_of("[]"),
            r#"[{"type": "model_type", "loc": [], "msg": "Input should be a valid dictionary or instance of InferenceRequest", "input": [], "ctx": {"class_name": "InferenceRequest"}, "url": "https://errors.pydantic.dev/2.14/v/model_type"}]"#
        );
    }

    #[test]
    fn missing_fields_in_declaration_order() {
        assert_eq!(
            errors_of(r#"{"inputs": [{}]}"#),
            r#"[{"type": "missing", "loc": ["inputs", 0, "name"], "msg": "Field required", "input": {}, "url": "https://errors.pydantic.dev/2.14/v/missing"}, {"type": "missing", "loc": ["inputs", 0, "shape"], "msg": "Field required", "input": {}, "url": "https://errors.pydantic.dev/2.14/v/missing"}, {"type": "missing", "loc": ["inputs", 0, "datatype"], "msg": "Field required", "input": {}, "url": "https://errors.pydantic.dev/2.14/v/missing"}, {"type": "missing", "loc": ["inputs", 0, "data"], "msg": "Field required", "input": {}, "url": "https://errors.pydantic.dev/2.14/v/missing"}]"#
        );
        assert_eq!(
            errors_of("{}"),
            r#"[{"type": "missing", "loc": ["inputs"], "msg": "Field required", "input": {}, "url": "https://errors.pydantic.dev/2.14/v/missing"}]"#
        );
    }

    #[test]
    fn wrong_types_and_the_datatype_enum() {
        assert_eq!(
            errors_of(r#"{"inputs": [{"name": 1, "shape": "a", "datatype": "X", "data": 1}]}"#),
            r#"[{"type": "string_type", "loc": ["inputs", 0, "name"], "msg": "Input should be a valid string", "input": 1, "url": "https://errors.pydantic.dev/2.14/v/string_type"}, {"type": "list_type", "loc": ["inputs", 0, "shape"], "msg": "Input should be a valid list", "input": "a", "url": "https://errors.pydantic.dev/2.14/v/list_type"}, {"type": "enum", "loc": ["inputs", 0, "datatype"], "msg": "Input should be 'BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'FP32', 'FP64' or 'BYTES'", "input": "X", "ctx": {"expected": "'BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'FP32', 'FP64' or 'BYTES'"}, "url": "https://errors.pydantic.dev/2.14/v/enum"}]"#
        );
    }

    #[test]
    fn lax_integers_in_shapes() {
        assert_eq!(
            errors_of(
                r#"{"inputs": [{"name": "a", "shape": ["1", 1.0, 1.5, true, "x", null, 1e30, "1.0", " 2 ", "1_0"], "datatype": "FP32", "data": []}]}"#
            ),
            r#"[{"type": "int_from_float", "loc": ["inputs", 0, "shape", 2], "msg": "Input should be a valid integer, got a number with a fractional part", "input": 1.5, "url": "https://errors.pydantic.dev/2.14/v/int_from_float"}, {"type": "int_parsing", "loc": ["inputs", 0, "shape", 4], "msg": "Input should be a valid integer, unable to parse string as an integer", "input": "x", "url": "https://errors.pydantic.dev/2.14/v/int_parsing"}, {"type": "int_type", "loc": ["inputs", 0, "shape", 5], "msg": "Input should be a valid integer", "input": null, "url": "https://errors.pydantic.dev/2.14/v/int_type"}, {"type": "int_parsing_size", "loc": ["inputs", 0, "shape", 6], "msg": "Unable to parse input string as an integer, exceeded maximum size", "input": 1e+30, "url": "https://errors.pydantic.dev/2.14/v/int_parsing_size"}]"#
        );
    }

    #[test]
    fn parameters_and_outputs() {
        assert_eq!(
            errors_of(r#"{"id": 5, "parameters": 3, "inputs": [], "outputs": 4}"#),
            r#"[{"type": "string_type", "loc": ["id"], "msg": "Input should be a valid string", "input": 5, "url": "https://errors.pydantic.dev/2.14/v/string_type"}, {"type": "model_type", "loc": ["parameters"], "msg": "Input should be a valid dictionary or instance of Parameters", "input": 3, "ctx": {"class_name": "Parameters"}, "url": "https://errors.pydantic.dev/2.14/v/model_type"}, {"type": "list_type", "loc": ["outputs"], "msg": "Input should be a valid list", "input": 4, "url": "https://errors.pydantic.dev/2.14/v/list_type"}]"#
        );
        assert_eq!(
            errors_of(
                r#"{"id": null, "parameters": {"content_type": 1, "headers": 2}, "inputs": [], "outputs": [{"parameters": null}, 3, {"name": 2}]}"#
            ),
            r#"[{"type": "string_type", "loc": ["parameters", "content_type"], "msg": "Input should be a valid string", "input": 1, "url": "https://errors.pydantic.dev/2.14/v/string_type"}, {"type": "dict_type", "loc": ["parameters", "headers"], "msg": "Input should be a valid dictionary", "input": 2, "url": "https://errors.pydantic.dev/2.14/v/dict_type"}, {"type": "missing", "loc": ["outputs", 0, "name"], "msg": "Field required", "input": {"parameters": null}, "url": "https://errors.pydantic.dev/2.14/v/missing"}, {"type": "model_type", "loc": ["outputs", 1], "msg": "Input should be a valid dictionary or instance of RequestOutput", "input": 3, "ctx": {"class_name": "RequestOutput"}, "url": "https://errors.pydantic.dev/2.14/v/model_type"}, {"type": "string_type", "loc": ["outputs", 2, "name"], "msg": "Input should be a valid string", "input": 2, "url": "https://errors.pydantic.dev/2.14/v/string_type"}]"#
        );
    }

    #[test]
    fn bf16_is_not_an_mlserver_datatype() {
        assert!(errors_of(
            r#"{"inputs": [{"name": "a", "shape": [1], "datatype": "BF16", "data": [1]}]}"#
        )
        .contains(r#""input": "BF16""#));
    }

    #[test]
    fn valid_lines_keep_what_is_sent() {
        let v = Json::parse(
            br#"{"id": "x", "parameters": {"headers": {"a": 1}, "content_type": null}, "inputs": [{"name": "a", "shape": ["2", true], "datatype": "FP32", "data": null}], "outputs": [{"name": "o", "parameters": {"binary_data": true}}], "extra": 1}"#,
        )
        .unwrap();
        let r = validate(&v).unwrap();
        assert_eq!(r.id.as_deref(), Some("x"));
        assert_eq!(r.outputs, Some(vec!["o".to_string()]));
        assert_eq!(r.inputs[0].shape, vec![2, 1]);
        assert_eq!(r.inputs[0].datatype, Datatype::Fp32);
        assert_eq!(r.inputs[0].data, Json::Null);
        let empty = validate(&Json::parse(br#"{"inputs": []}"#).unwrap()).unwrap();
        assert_eq!(empty.id, None);
        assert_eq!(empty.outputs, None);
    }

    #[test]
    fn describe_reads_like_pydantic() {
        let v = Json::parse(br#"{"inputs": "nope"}"#).unwrap();
        let errs = validate(&v).unwrap_err();
        assert_eq!(
            describe(&errs),
            "1 validation error for InferenceRequest\ninputs\n  Input should be a valid list [type=list_type, input_value='nope', input_type=str]\n    For further information visit https://errors.pydantic.dev/2.14/v/list_type"
        );
    }
}
