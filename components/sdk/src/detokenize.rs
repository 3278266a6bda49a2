//! The text of a growing token sequence, for streaming: a new token costs a
//! detokenization of a short window (the tokens since the last whole
//! character, after the ones before them as context), not of everything so
//! far, so a long answer is linear, not quadratic. A decoder that treats a
//! sequence's start specially (SentencePiece's leading space) sees the
//! window's context too, so what is added is what a whole decode would add.

#[derive(Default)]
pub(crate) struct IncrementalText {
    /// The window's context starts here…
    prefix: usize,
    /// …and its new tokens here.
    read: usize,
    text: String,
}

impl IncrementalText {
    /// The text so far, given `tokens`: all of them, the last ones new. A
    /// partial character at the end is held back until it is whole.
    pub(crate) fn update(&mut self, tokens: &[u32], detokenize: impl Fn(&[u32]) -> String) -> &str {
        let (before, now) = (detokenize(&tokens[self.prefix..self.read]), detokenize(&tokens[self.prefix..]));
        if now.ends_with('\u{fffd}') {
            return &self.text;
        }
        match now.strip_prefix(before.as_str()) {
            Some(added) => self.text.push_str(added),
            // The decoder rewrote the window's start: take the whole text again.
            None => self.text = detokenize(tokens),
        }
        (self.prefix, self.read) = (self.read, tokens.len());
        &self.text
    }

    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// The whole text, a partial character at the end included (as U+FFFD).
    pub(crate) fn finish(mut self, tokens: &[u32], detokenize: impl Fn(&[u32]) -> String) -> String {
        if self.read < tokens.len() {
            let (before, now) = (detokenize(&tokens[self.prefix..self.read]), detokenize(&tokens[self.prefix..]));
            match now.strip_prefix(before.as_str()) {
                Some(added) => self.text.push_str(added),
                None => self.text = detokenize(tokens),
            }
        }
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::IncrementalText;

    /// A byte-level vocabulary (a token per byte, so characters split across
    /// tokens) whose decoder drops one leading space, as SentencePiece does.
    fn detokenize(tokens: &[u32]) -> String {
        let bytes: Vec<u8> = tokens.iter().map(|&t| t as u8).collect();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        text.strip_prefix(' ').map(str::to_string).unwrap_or(text)
    }

    #[test]
    fn the_text_grows_as_a_whole_decode_would_and_holds_back_partial_characters() {
        let text = " Grüße, 世界 and more";
        let tokens: Vec<u32> = text.bytes().map(u32::from).collect();
        let mut incremental = IncrementalText::default();
        for n in 1..=tokens.len() {
            let shown = incremental.update(&tokens[..n], detokenize).to_string();
            let whole = detokenize(&tokens[..n]);
            assert!(whole.starts_with(&shown), "after {n}: {shown:?} is not a start of {whole:?}");
            assert!(!shown.contains('\u{fffd}'), "after {n}: a partial character shown: {shown:?}");
        }
        assert_eq!(incremental.text(), detokenize(&tokens));
        assert_eq!(incremental.finish(&tokens, detokenize), "Grüße, 世界 and more");
    }

    #[test]
    fn a_partial_character_at_the_end_is_kept_by_finish() {
        let tokens: Vec<u32> = "ab€".bytes().map(u32::from).take(4).collect();
        let mut incremental = IncrementalText::default();
        for n in 1..=tokens.len() {
            incremental.update(&tokens[..n], detokenize);
        }
        assert_eq!(incremental.text(), "ab");
        assert_eq!(incremental.finish(&tokens, detokenize), detokenize(&tokens));
    }
}
