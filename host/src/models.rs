//! The models a host serves, in registration order (Pie's SDK takes the first).
//! Empty until the engine registers the models it loaded.

#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub name: String,
    pub description: String,
    pub traits: Vec<String>,
}

#[derive(Debug, Default)]
pub struct ModelRegistry {
    models: Vec<ModelInfo>,
}

impl ModelRegistry {
    pub fn register(&mut self, model: ModelInfo) {
        self.models.push(model);
    }

    pub fn get(&self, name: &str) -> Option<&ModelInfo> {
        self.models.iter().find(|m| m.name == name)
    }

    pub fn names(&self) -> Vec<String> {
        self.models.iter().map(|m| m.name.clone()).collect()
    }

    /// Names of the models that have every one of `traits`.
    pub fn names_with_traits(&self, traits: &[String]) -> Vec<String> {
        self.models
            .iter()
            .filter(|m| traits.iter().all(|t| m.traits.contains(t)))
            .map(|m| m.name.clone())
            .collect()
    }
}
