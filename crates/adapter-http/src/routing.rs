//! What a request that no operation matched is told: 405 with `Allow` when its path is
//! an operation's path under another method, 404 otherwise. Built from the OpenAPI
//! document, so it knows exactly the operations that are registered.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ResourceDef, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::ALLOW;
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use utoipa::openapi::OpenApi;

use crate::extract::not_found;
use crate::problem::{ApiError, ProblemCode};

/// Each documented path template with the methods it serves.
#[derive(Debug)]
pub struct RouteTable {
    routes: Vec<(ResourceDef, Vec<Method>)>,
}

impl RouteTable {
    pub fn from_document(document: &OpenApi) -> Self {
        let routes = document
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let methods = [
                    (Method::GET, item.get.is_some()),
                    // Every GET also answers HEAD (see `head_as_get`).
                    (Method::HEAD, item.get.is_some() || item.head.is_some()),
                    (Method::POST, item.post.is_some()),
                    (Method::PUT, item.put.is_some()),
                    (Method::PATCH, item.patch.is_some()),
                    (Method::DELETE, item.delete.is_some()),
                    (Method::OPTIONS, item.options.is_some()),
                ]
                .into_iter()
                .filter_map(|(method, served)| served.then_some(method))
                .collect();
                (ResourceDef::new(path.as_str()), methods)
            })
            .collect();
        Self { routes }
    }

    /// The methods served at `path`, or `None` when no operation has this path.
    pub fn allowed(&self, path: &str) -> Option<&[Method]> {
        self.routes.iter().find(|(template, _)| template.is_match(path)).map(|(_, methods)| methods.as_slice())
    }
}

/// Middleware: answers HEAD on every GET route, as the GET without its body (RFC 9110).
pub async fn head_as_get(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let head = req.method() == Method::HEAD;
    if head {
        req.head_mut().method = Method::GET;
    }
    let response = next.call(req).await?;
    Ok(if head { response.map_body(|_, _| BoxBody::new(())) } else { response.map_into_boxed_body() })
}

/// The default service: 405 with `Allow` (RFC 9110) for a known path, 404 otherwise.
pub async fn unmatched(request: HttpRequest, table: web::Data<RouteTable>) -> HttpResponse {
    let Some(methods) = table.allowed(request.path()) else {
        return not_found(&request).error_response();
    };
    let allow = methods.iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
    let error = ApiError::new(
        ProblemCode::MethodNotAllowed,
        format!("{} is not allowed on {}; allowed: {allow}", request.method(), request.path()),
    );
    let mut response = error.error_response();
    if let Ok(value) = allow.parse() {
        response.headers_mut().insert(ALLOW, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_path_lists_its_methods_and_an_unknown_one_none() {
        let table = RouteTable::from_document(&crate::operations::document());
        assert_eq!(table.allowed("/api/v1/points/7"), Some(&[Method::GET, Method::HEAD, Method::POST][..]));
        assert_eq!(table.allowed("/api/v1/orders/5"), Some(&[Method::GET, Method::HEAD][..]));
        assert_eq!(table.allowed("/api/v1/nothing"), None);
    }
}
