//! Where an instance's export names and topics live: its own namespace (on
//! the server, its user's), except names under the shared prefix
//! (`server.shared_prefix`, `public/` by default), which live in one scope
//! every namespace sees. What is exported there the others may import but
//! only its owner may release.

/// The scope of shared names; no launcher names a namespace this.
const SHARED_SCOPE: &str = "shared";

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Namespace {
    own: String,
    /// `None`: nothing is shared (one namespace for everything, or sharing turned off).
    shared_prefix: Option<String>,
}

impl Namespace {
    /// `own` is `""` for instances in the one namespace everything shares
    /// (`crust run`): there is nothing further to share with.
    pub fn new(own: String, shared_prefix: &str) -> Self {
        let shared_prefix = (!own.is_empty() && !shared_prefix.is_empty()).then(|| shared_prefix.to_string());
        Self { own, shared_prefix }
    }

    /// The instance's own namespace.
    pub fn own(&self) -> &str {
        &self.own
    }

    /// Whether `name` is one every namespace shares.
    pub fn is_shared(&self, name: &str) -> bool {
        self.shared_prefix.as_deref().is_some_and(|prefix| name.starts_with(prefix))
    }

    /// The scope `name` lives in.
    pub fn scope_of(&self, name: &str) -> &str {
        if self.is_shared(name) { SHARED_SCOPE } else { &self.own }
    }

    /// The scopes whose names the instance sees: its own, then the shared one.
    pub fn visible(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.own.as_str()).chain(self.shared_prefix.as_ref().map(|_| SHARED_SCOPE))
    }
}

#[cfg(test)]
mod tests {
    use super::Namespace;

    #[test]
    fn shared_names_leave_the_users_namespace_and_others_stay() {
        let alice = Namespace::new("user/alice".into(), "public/");
        assert_eq!(alice.scope_of("cache"), "user/alice");
        assert_eq!(alice.scope_of("public/news"), Namespace::new("user/bob".into(), "public/").scope_of("public/news"));
        assert_ne!(alice.scope_of("public/news"), "user/alice");
        // Sharing off, or one namespace for everything: every name stays where it is.
        assert_eq!(Namespace::new("user/alice".into(), "").scope_of("public/news"), "user/alice");
        assert_eq!(Namespace::new(String::new(), "public/").scope_of("public/news"), "");
        assert_eq!(alice.visible().count(), 2);
    }
}
