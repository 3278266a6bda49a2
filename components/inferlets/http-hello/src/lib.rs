//! `http-hello`: a server inferlet (`wasi:http/incoming-handler`). Every
//! request gets `hello from <path>; arguments: <arguments>` and one line on
//! stdout, which streams to the client that launched it.

use std::io::Write as _;

use wasip2::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

struct Hello;

impl wasip2::exports::http::incoming_handler::Guest for Hello {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let arguments = crust_sdk::runtime::get_arguments().join(" ");
        println!("served {path}");
        let response = OutgoingResponse::new(Fields::new());
        let body = response.body().expect("a new response has a body");
        ResponseOutparam::set(response_out, Ok(response));
        let mut out = body.write().expect("a new body has a stream");
        let _ = writeln!(out, "hello from {path}; arguments: {arguments}");
        let _ = out.flush();
        drop(out);
        let _ = OutgoingBody::finish(body, None);
    }
}

wasip2::http::proxy::export!(Hello);
