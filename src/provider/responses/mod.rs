//! The OpenAI Responses API wire format (`POST /responses`), used
//! statelessly: every request carries the whole conversation with
//! `store: false`, and the model's reasoning travels from turn to turn as
//! the encrypted items the server returns (`include:
//! ["reasoning.encrypted_content"]`), so nothing is kept on the server.
//!
//! The stream is a sequence of typed events (`response.created`,
//! `response.output_item.added`, `response.output_text.delta`,
//! `response.function_call_arguments.delta`, `response.output_item.done`,
//! …) ending with `response.completed`, `response.incomplete` or
//! `response.failed`; there is no `[DONE]`. An `error` event reports a
//! failure inside the stream.
//!
//! `request` builds the request body; `decode` reads the stream (or, as a
//! fallback, the complete response).

mod decode;
mod request;

pub(crate) use decode::{Decoder, decode_complete};
pub(crate) use request::request_body;
