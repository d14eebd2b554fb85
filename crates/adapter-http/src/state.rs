use application::Shop;

use crate::auth::AdminToken;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub shop: Shop,
    /// `None`: the admin API answers 401 to everyone.
    pub admin_token: Option<AdminToken>,
}
