//! Reloading rules and settings without dropping a request.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::helpers::*;

fn rules(action: &str) -> String {
    format!(
        r#"
[[authorization.rules]]
name = "x"
path_prefix = "/x"
action = "{action}"
"#
    )
}

async fn status(app: &TestApp, path: &str) -> u16 {
    app.client
        .get(app.url("/verify"))
        .header("x-forwarded-host", "app.example.com")
        .header("x-forwarded-uri", path)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn app(file: &ConfigFile) -> TestApp {
    TestApp::spawn_with_file(Some(&file.path), &[("CLERK_JWT_KEY", PUBLIC_PEM)]).await
}

#[tokio::test]
async fn a_reload_applies_new_rules() {
    let file = ConfigFile::new(&rules("public"));
    let app = app(&file).await;
    assert_eq!(status(&app, "/x").await, 200);
    file.write(&rules("deny"));
    app.reloader.reload().unwrap();
    assert_eq!(status(&app, "/x").await, 403);
    assert!(
        app.metrics()
            .await
            .contains(r#"clerk_forward_auth_config_reloads_total{outcome="success"} 1"#)
    );
}

#[tokio::test]
async fn an_invalid_configuration_is_rejected_and_the_old_one_stays() {
    let file = ConfigFile::new(&rules("public"));
    let app = app(&file).await;
    file.write(&rules("sometimes"));
    let error = app.reloader.reload().unwrap_err();
    assert!(error.contains("action `sometimes`"), "{error}");
    assert_eq!(status(&app, "/x").await, 200);
    assert!(
        app.metrics()
            .await
            .contains(r#"clerk_forward_auth_config_reloads_total{outcome="failure"} 1"#)
    );
}

#[tokio::test]
async fn a_reload_under_load_keeps_every_request_answered() {
    let file = ConfigFile::new(&rules("public"));
    let app = Arc::new(app(&file).await);
    let answered = Arc::new(AtomicUsize::new(0));
    let mut load = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (app, answered) = (app.clone(), answered.clone());
        load.spawn(async move {
            for _ in 0..150 {
                let code = status(&app, "/x").await;
                assert!(code == 200 || code == 403, "unexpected {code}");
                answered.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
    // Reload while the load runs, alternating the rule.
    let mut reloads = 0;
    while answered.load(Ordering::SeqCst) < 1200 && reloads < 200 {
        file.write(&rules(if reloads % 2 == 0 { "deny" } else { "public" }));
        app.reloader.reload().unwrap();
        reloads += 1;
        tokio::task::yield_now().await;
    }
    while let Some(result) = load.join_next().await {
        result.unwrap();
    }
    assert_eq!(answered.load(Ordering::SeqCst), 1200);
    assert!(
        reloads >= 5,
        "the load finished before the reloads could overlap it ({reloads})"
    );
}

#[tokio::test]
async fn the_jwks_cache_survives_a_reload_that_keeps_its_source() {
    let clerk = FakeClerk::start(&[&key1()]).await;
    let file = ConfigFile::new(&rules("public"));
    let env = clerk.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = TestApp::spawn_with_file(Some(&file.path), &env).await;
    app.wait_ready(200).await;
    file.write(&rules("deny"));
    app.reloader.reload().unwrap();
    assert_eq!(app.bearer(&token(&key1())).await.status(), 200);
    assert_eq!(clerk.fetches(), 1, "no refetch after the reload");
}

#[tokio::test]
async fn a_changed_file_is_picked_up_by_the_watcher() {
    let file = ConfigFile::new(&rules("public"));
    let app = app(&file).await;
    app.reloader.spawn_watchers(Duration::from_millis(25));
    assert_eq!(status(&app, "/x").await, 200);
    // A different length, so the change is seen even within one mtime tick.
    file.write(&format!("{}\n# changed\n", rules("deny")));
    let deadline = Instant::now() + Duration::from_secs(10);
    while status(&app, "/x").await != 403 {
        assert!(Instant::now() < deadline, "the watcher never reloaded");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
