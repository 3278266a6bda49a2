//! The tokenize provider: `inferlet:core/tokenize` over HuggingFace
//! `tokenizers`. One instance serves every inferlet, so each model's
//! tokenizer is parsed once (≈50 ms for SmolLM2) and shared by all the
//! `tokenizer` resources handed out for it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

wit_bindgen::generate!({
    path: "../../../wit",
    world: "crust:inferlet/tokenize-provider",
    generate_all,
});

use exports::inferlet::core::tokenize::{Guest, GuestTokenizer, Tokenizer as TokenizerResource};
use inferlet::core::common::Model;

/// Where the host puts `<model name>.json`.
const TOKENIZERS_DIR: &str = "/tokenizers";

thread_local! {
    static LOADED: RefCell<HashMap<String, Rc<tokenizers::Tokenizer>>> = RefCell::new(HashMap::new());
}

fn load(model: &str) -> Result<Rc<tokenizers::Tokenizer>, String> {
    if let Some(t) = LOADED.with(|l| l.borrow().get(model).cloned()) {
        return Ok(t);
    }
    let path = format!("{TOKENIZERS_DIR}/{model}.json");
    let json = std::fs::read_to_string(&path).map_err(|e| format!("reading {path}: {e}"))?;
    let tokenizer: tokenizers::Tokenizer = json.parse().map_err(|e| format!("parsing {path}: {e}"))?;
    let tokenizer = Rc::new(tokenizer);
    LOADED.with(|l| l.borrow_mut().insert(model.to_string(), tokenizer.clone()));
    Ok(tokenizer)
}

struct Provider;

/// One model's tokenizer.
struct ModelTokenizer {
    inner: Rc<tokenizers::Tokenizer>,
}

impl Guest for Provider {
    type Tokenizer = ModelTokenizer;

    fn get_tokenizer(model: &Model) -> TokenizerResource {
        let name = model.get_name();
        // The host checks the model's tokenizer before it asks; a failure here is a host bug.
        let inner = load(&name).unwrap_or_else(|e| panic!("tokenizer for model `{name}`: {e}"));
        TokenizerResource::new(ModelTokenizer { inner })
    }
}

impl GuestTokenizer for ModelTokenizer {
    /// Special tokens written in the text are parsed as such; no BOS is added.
    fn tokenize(&self, text: String) -> Vec<u32> {
        match self.inner.encode(text, false) {
            Ok(encoding) => encoding.get_ids().to_vec(),
            Err(e) => panic!("tokenize: {e}"),
        }
    }

    /// Special tokens keep their text; invalid UTF-8 is replaced.
    fn detokenize(&self, tokens: Vec<u32>) -> String {
        let vocab = self.inner.get_vocab_size(true) as u32;
        let known: Vec<u32> = tokens.into_iter().filter(|&t| t < vocab).collect();
        self.inner.decode(&known, false).unwrap_or_default()
    }

    fn get_vocabs(&self) -> (Vec<u32>, Vec<Vec<u8>>) {
        let mut vocab: Vec<(String, u32)> = self.inner.get_vocab(true).into_iter().collect();
        vocab.sort_by_key(|(_, id)| *id);
        let (ids, tokens) = vocab.into_iter().map(|(token, id)| (id, byte_level_bytes(&token))).unzip();
        (ids, tokens)
    }
}

/// A byte-level BPE token's bytes: each char stands for one byte (GPT-2's map).
fn byte_level_bytes(token: &str) -> Vec<u8> {
    token
        .chars()
        .map(|c| {
            let c = c as u32;
            match c {
                0x21..=0x7e | 0xa1..=0xac | 0xae..=0xff => c as u8,
                // GPT-2 moved the other 68 bytes to U+0100.. in byte order.
                0x100..=0x143 => UNPRINTABLE[(c - 0x100) as usize],
                _ => b'?',
            }
        })
        .collect()
}

/// The bytes GPT-2's byte-level map moves above U+00FF, in order.
const UNPRINTABLE: [u8; 68] = {
    let mut out = [0u8; 68];
    let (mut b, mut n) = (0u32, 0usize);
    while b < 256 {
        let printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
        if !printable {
            out[n] = b as u8;
            n += 1;
        }
        b += 1;
    }
    out
};

export!(Provider);
