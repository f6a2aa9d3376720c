//! A one-pass reader for inference requests as clients write them.
//!
//! serde cannot hand a visitor the text of a value, so the serde path reads
//! FP32/FP64 `data` twice: once to find where it ends (a `RawValue`), once
//! in the number scanner. For a 64Ki-element tensor that first pass was a
//! quarter of the request's parsing. This reader walks the request itself,
//! reads float `data` in the same pass that checks its syntax, and hands
//! every other value (ids, parameters, shapes, outputs, other datatypes) to
//! serde on its own slice of the text.
//!
//! It only ever answers for requests it reads completely: at anything
//! unusual (an escaped key or name, a duplicate key, `data` before
//! `datatype`, `null` in float data, deep nesting, any error) it gives up,
//! and the serde path reads the request from the start, so values and
//! error messages are the serde path's whatever the input. The tests and
//! the `infer_request_json` fuzz target check that both agree.

use serde::de::{DeserializeOwned, DeserializeSeed, IgnoredAny};

use crate::dataplane::element_count;
use crate::tensor::{scan_floats, skip_whitespace, DataSeed};
use crate::{Datatype, InferenceRequest, Parameters, RequestOutput, Tensor, TensorData};

/// Nesting this reader follows at most. Deeper values are left to serde,
/// whose own limit (128, counted from the top of the request) decides.
const MAX_DEPTH: usize = 64;

/// The request in `body`, or `None` where the serde path must read it.
pub(crate) fn read_request(body: &[u8]) -> Option<InferenceRequest> {
    let mut reader = Reader { bytes: body, at: 0 };
    let request = reader.request()?;
    skip_whitespace(body, &mut reader.at);
    (reader.at == body.len()).then_some(request)
}

impl InferenceRequest {
    /// A request from its JSON text, as `serde_json::from_slice` reads it
    /// (the same request, the same errors), but in one pass over float
    /// data for the requests clients usually send (see this module).
    pub fn from_json(body: &[u8]) -> Result<InferenceRequest, serde_json::Error> {
        match read_request(body) {
            Some(request) => Ok(request),
            None => serde_json::from_slice(body),
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

/// Fills an empty slot; a second value for the same key gives up.
fn once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value);
    Some(())
}

impl<'a> Reader<'a> {
    /// The next byte after whitespace, not consumed.
    fn peek(&mut self) -> Option<u8> {
        skip_whitespace(self.bytes, &mut self.at);
        self.bytes.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// A string without escapes (keys, names and datatypes as clients
    /// write them); one with escapes gives up.
    fn plain_string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        loop {
            match *self.bytes.get(self.at)? {
                b'"' => break,
                b'\\' | 0..=0x1f => return None,
                _ => self.at += 1,
            }
        }
        let text = std::str::from_utf8(&self.bytes[start..self.at]).ok()?;
        self.at += 1;
        Some(text)
    }

    /// Calls `member` with each key of an object, the reader then at the
    /// key's value, which `member` must consume.
    fn object(&mut self, mut member: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.delimited(b'{', b'}', |r| {
            let key = r.plain_string()?;
            r.eat(b':')?;
            member(r, key)
        })
    }

    /// Calls `element` for each element of an array.
    fn array(&mut self, element: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.delimited(b'[', b']', element)
    }

    /// `open`, items separated by commas (none at all allowed), `close`.
    fn delimited(
        &mut self,
        open: u8,
        close: u8,
        mut item: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        self.eat(open)?;
        if self.peek()? == close {
            self.at += 1;
            return Some(());
        }
        loop {
            item(self)?;
            match self.peek()? {
                b',' => self.at += 1,
                c if c == close => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// The text of the next value, found by brackets and quotes only:
    /// serde checks it when it reads it.
    fn value_text(&mut self) -> Option<&'a str> {
        skip_whitespace(self.bytes, &mut self.at);
        let start = self.at;
        let mut depth = 0usize;
        loop {
            match *self.bytes.get(self.at)? {
                b'"' => {
                    self.at += 1;
                    loop {
                        match *self.bytes.get(self.at)? {
                            b'"' => break,
                            b'\\' => self.at += 2,
                            _ => self.at += 1,
                        }
                    }
                }
                b'[' | b'{' => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return None;
                    }
                }
                b']' | b'}' if depth == 0 => break,
                b']' | b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        self.at += 1;
                        break;
                    }
                }
                b',' if depth == 0 => break,
                _ => {}
            }
            self.at += 1;
        }
        std::str::from_utf8(&self.bytes[start..self.at]).ok()
    }

    /// The next value read by serde.
    fn typed<T: DeserializeOwned>(&mut self) -> Option<T> {
        serde_json::from_str(self.value_text()?).ok()
    }

    fn request(&mut self) -> Option<InferenceRequest> {
        let mut id: Option<Option<String>> = None;
        let mut parameters: Option<Option<Parameters>> = None;
        let mut inputs: Option<Vec<Tensor>> = None;
        let mut outputs: Option<Option<Vec<RequestOutput>>> = None;
        self.object(|r, key| match key {
            "id" => once(&mut id, r.typed()?),
            "parameters" => once(&mut parameters, r.typed()?),
            "outputs" => once(&mut outputs, r.typed()?),
            "inputs" => {
                let mut tensors = Vec::new();
                r.array(|r| {
                    tensors.push(r.tensor()?);
                    Some(())
                })?;
                once(&mut inputs, tensors)
            }
            _ => r.typed::<IgnoredAny>().map(drop),
        })?;
        Some(InferenceRequest {
            id: id.flatten(),
            parameters: parameters.flatten(),
            inputs: inputs?,
            outputs: outputs.flatten(),
            json: None,
            headers: None,
        })
    }

    fn tensor(&mut self) -> Option<Tensor> {
        let mut name: Option<String> = None;
        let mut shape: Option<Vec<usize>> = None;
        let mut datatype: Option<Datatype> = None;
        let mut parameters: Option<Option<Parameters>> = None;
        let mut data: Option<TensorData> = None;
        self.object(|r, key| match key {
            "name" => once(&mut name, r.plain_string()?.to_owned()),
            "shape" => once(&mut shape, r.typed()?),
            "datatype" => once(&mut datatype, r.plain_string()?.parse().ok()?),
            "parameters" => once(&mut parameters, r.typed()?),
            "data" => {
                // `data` before `datatype` is the serde path's.
                let datatype = datatype?;
                let capacity = shape
                    .as_deref()
                    .and_then(|s| element_count("", s).ok())
                    .unwrap_or(0);
                once(&mut data, r.data(datatype, capacity)?)
            }
            _ => r.typed::<IgnoredAny>().map(drop),
        })?;
        Tensor::assemble(name?, shape?, datatype?, parameters.flatten(), data).ok()
    }

    /// `data` of a known datatype: floats scanned here, in this pass;
    /// the rest by serde's [`DataSeed`] on the value's text.
    fn data(&mut self, datatype: Datatype, capacity: usize) -> Option<TensorData> {
        skip_whitespace(self.bytes, &mut self.at);
        match datatype {
            Datatype::Fp32 => scan_floats(self.bytes, &mut self.at, capacity, |v| {
                let x = v as f32;
                x.is_finite().then_some(x)
            })
            .map(TensorData::Fp32),
            Datatype::Fp64 => {
                scan_floats(self.bytes, &mut self.at, capacity, Some).map(TensorData::Fp64)
            }
            _ => {
                let mut de = serde_json::Deserializer::from_str(self.value_text()?);
                let data = DataSeed { datatype, capacity }.deserialize(&mut de).ok()?;
                de.end().ok()?;
                Some(data)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the serde path makes of `text`: the request, or its error.
    fn via_serde(text: &str) -> Result<InferenceRequest, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    /// The reader either gives up or agrees with serde, bit for bit.
    fn agrees(text: &str) -> Option<InferenceRequest> {
        let fast = read_request(text.as_bytes());
        if let Some(fast) = &fast {
            let slow = via_serde(text)
                .unwrap_or_else(|e| panic!("the reader accepted what serde refuses ({e}): {text}"));
            assert_eq!(
                format!("{fast:?}"),
                format!("{slow:?}"),
                "the reader and serde differ on {text}"
            );
        }
        fast
    }

    #[test]
    fn reads_what_clients_send_in_one_pass() {
        for text in [
            r#"{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}"#,
            r#"{"id":"a","parameters":{"content_type":"np","x":[1,{"y":null}]},
                "inputs":[{"name":"x","shape":[2,2],"datatype":"FP64","parameters":{"content_type":"np"},
                "data":[[1,2],[3.25,-0.0]]},{"name":"s","shape":[2],"datatype":"BYTES","data":["a\"b","c"]}],
                "outputs":[{"name":"y","parameters":{"binary_data":false}}]}"#,
            r#" { "inputs" : [ { "name" : "x" , "shape" : [ 3 ] , "datatype" : "INT64" , "data" : [ 1 , -2 , 3 ] } ] } "#,
            r#"{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":8}}]}"#,
            r#"{"inputs":[],"id":null,"outputs":null,"parameters":null,"extra":{"deep":[[["k"]]]}}"#,
            r#"{"inputs":[{"name":"x","shape":[0],"datatype":"FP32","data":[]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":1e-3,"other":"\u00e9"}]}"#,
            "{\"inputs\":[{\"name\":\"é\",\"shape\":[3],\"datatype\":\"FP32\",\"data\":[1e0,2E+1,123456789.123456789]}]}",
        ] {
            assert!(agrees(text).is_some(), "the reader gave up on {text}");
        }
        let r = agrees(
            r#"{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","data":[[0.1,2,3e2]]}]}"#,
        )
        .expect("a plain request is read here");
        assert_eq!(r.inputs[0].as_slice::<f32>().unwrap(), &[0.1, 2.0, 300.0]);
    }

    #[test]
    fn gives_up_where_serde_must_answer() {
        for text in [
            // Errors, each of which serde reports with its own message.
            r#"{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","data":[1]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1,]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","data":[1 2]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[01]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1.]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[-]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1e39]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":["1"]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"INT8","data":[300]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP33","data":[1]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[-1],"datatype":"FP32","data":[1]}]}"#,
            r#"{"inputs":[{"name":"x","datatype":"FP32","data":[1]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32"}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}],"inputs":[]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]} x"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}],}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]"#,
            r#"{"outputs":[]}"#,
            r#"{"inputs":{}}"#,
            r#"{"inputs":[],"extra":[1,]}"#,
            // Valid, but the serde path's to read.
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[null]}]}"#,
            r#"{"inputs":[{"data":[1],"name":"x","shape":[1],"datatype":"FP32"}]}"#,
            r#"{"inputs":[{"name":"x\n","shape":[1],"datatype":"FP32","data":[1]}]}"#,
            r#"{"inp\u0075ts":[]}"#,
            r#"{"inputs":[{"name":"\u00e9x","shape":[1],"datatype":"FP32","data":[1]}]}"#,
            r#"{"inputs":[{"name":"x","name":"y","shape":[1],"datatype":"FP32","data":[1]}]}"#,
        ] {
            assert!(agrees(text).is_none(), "{text}");
        }
        let deep = format!(
            r#"{{"inputs":[{{"name":"x","shape":[1],"datatype":"FP32","data":{}1{}}}]}}"#,
            "[".repeat(100),
            "]".repeat(100)
        );
        assert!(agrees(&deep).is_none());
        let deep = format!(
            r#"{{"inputs":[],"parameters":{{"p":{}{}}}}}"#,
            "[".repeat(130),
            "]".repeat(130)
        );
        assert!(agrees(&deep).is_none());
        assert!(via_serde(&deep).is_err());
        assert!(read_request(
            b"{\"inputs\":[{\"name\":\"\xff\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}"
        )
        .is_none());
    }

    /// Near-valid requests, where a reader goes wrong: every mutant of a
    /// few requests by one replaced, inserted or deleted byte (from the
    /// bytes JSON turns on) is either given up or read as serde reads it.
    #[test]
    fn mutants_are_given_up_or_read_as_serde_reads_them() {
        let seeds = [
            r#"{"id":"a","inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[[1.5,-2e3],[0,0.25]]}],"outputs":[{"name":"y"}]}"#,
            r#"{"inputs":[{"name":"x","shape":[3],"datatype":"FP64","parameters":{"content_type":"np"},"data":[1,-0.0,3e-2]}],"parameters":{"a":[1,{"b":"c"}]}}"#,
            r#"{"inputs":[{"name":"s","shape":[2],"datatype":"BYTES","data":["a","b"]},{"name":"i","shape":[1],"datatype":"INT32","data":[7]}]}"#,
        ];
        let alphabet = b"{}[],:\"\\ 0123456789-+.eEnul";
        let (mut read, mut given_up) = (0, 0);
        for seed in seeds {
            let seed = seed.as_bytes();
            for at in 0..=seed.len() {
                let mut mutants = vec![];
                if at < seed.len() {
                    let mut deleted = seed.to_vec();
                    deleted.remove(at);
                    mutants.push(deleted);
                }
                for &b in alphabet.iter() {
                    let mut inserted = seed.to_vec();
                    inserted.insert(at, b);
                    mutants.push(inserted);
                    if at < seed.len() {
                        let mut replaced = seed.to_vec();
                        replaced[at] = b;
                        mutants.push(replaced);
                    }
                }
                for mutant in mutants {
                    let text = String::from_utf8(mutant).unwrap();
                    match agrees(&text) {
                        Some(_) => read += 1,
                        None => given_up += 1,
                    }
                }
            }
        }
        // Both sides of the reader are exercised.
        assert!(
            read > 1000 && given_up > 1000,
            "{read} read, {given_up} given up"
        );
    }
}
