//! `openapi.yaml` documents exactly the routes the server registers.

use std::collections::BTreeSet;

use clerk_forward_auth::http::ROUTES;

#[test]
fn openapi_paths_match_the_registered_routes() {
    let spec = config::Config::builder()
        .add_source(config::File::from_str(
            include_str!("../../openapi.yaml"),
            config::FileFormat::Yaml,
        ))
        .build()
        .unwrap();
    let paths = spec.get_table("paths").unwrap();
    let documented: BTreeSet<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            let methods = item.clone().into_table().unwrap();
            let all = ["get", "post", "put", "patch", "delete", "head", "options"];
            let listed: Vec<&str> = all
                .iter()
                .copied()
                .filter(|m| methods.contains_key(*m))
                .collect();
            let method = if listed.len() == all.len() {
                "any".to_owned()
            } else {
                listed.join(",")
            };
            Some((path.clone(), method))
        })
        .collect();
    let registered: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(p, m)| ((*p).to_owned(), (*m).to_owned()))
        .collect();
    assert_eq!(documented, registered);
}
