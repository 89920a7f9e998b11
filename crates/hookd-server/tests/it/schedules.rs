//! Schedules (VergeOS tasks): CRUD with field errors, next run times, the scheduler firing a
//! message to the webhook, runs by hand, and missed occurrences after downtime.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use hookd_core::time::parse_rfc3339;
use hookd_core::ScheduleId;
use hookd_server::WorkerMode;
use serde_json::{json, Value};

use crate::backend_test;
use crate::support::{
    spawn_app, spawn_app_with, spawn_on, test_settings, Backend, TestApp, TestReceiver,
};

async fn create(app: &TestApp, body: Value) -> Value {
    let (status, out) = app.post("/schedules", body).await;
    assert_eq!(status, StatusCode::CREATED, "{out}");
    out
}

fn ms(v: &Value) -> i64 {
    parse_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}"))).unwrap()
}

/// The deliveries a schedule made, newest first.
async fn deliveries_of_webhook(app: &TestApp, webhook_id: &str) -> Vec<Value> {
    let (_, list) = app
        .get(&format!("/deliveries?webhook_id={webhook_id}&limit=1000"))
        .await;
    list["data"].as_array().unwrap().clone()
}

backend_test!(an_interval_schedule_sends_its_message_to_the_webhook);
async fn an_interval_schedule_sends_its_message_to_the_webhook(b: Backend) {
    let app = spawn_app(&b).await;
    let rx = TestReceiver::start().await;
    let wh = app
        .create_webhook(json!({"name": "slack", "url": rx.url("/hook"),
            "auth": {"type": "bearer", "token": "xoxb-123"}}))
        .await;
    let before = hookd_server::now_ms();
    let s = create(
        &app,
        json!({"name": "sync job check", "description": "VergeOS task", "webhook_id": wh["id"],
               "every_seconds": 1,
               "message": "{\"text\": \"{{ data.name }} fired\"}"}),
    )
    .await;
    assert_eq!(s["every_seconds"], 1);
    assert_eq!(s["cron"], Value::Null);
    let first = ms(&s["next_run_at"]);
    assert!(
        first > before && first <= hookd_server::now_ms() + 1000,
        "{s}"
    );
    assert_eq!(s["next_runs"].as_array().unwrap().len(), 5);

    let got = rx.wait_for(1).await;
    assert_eq!(got[0].json(), json!({"text": "sync job check fired"}));
    assert_eq!(got[0].header("authorization"), Some("Bearer xoxb-123"));
    assert!(
        got[0].header("webhook-signature").is_some(),
        "signed as usual"
    );

    // The delivery says which schedule and occurrence made it, and went through history.
    let id = got[0].header("webhook-id").unwrap().to_owned();
    let d = app.wait_delivery(&id, |d| d["status"] == "succeeded").await;
    assert_eq!(d["schedule_id"], s["id"]);
    assert_eq!(ms(&d["occurrence"]), first);
    assert_eq!(d["attempts"][0]["response"]["status"], 200);
    let (_, event) = app
        .get(&format!("/events/{}", d["event_id"].as_str().unwrap()))
        .await;
    assert_eq!(event["type"], "schedule.fired");
    assert_eq!(event["data"]["schedule_id"], s["id"]);
    assert_eq!(event["data"]["manual"], false);

    // The next run moved on, and the last run is shown.
    let (_, after) = app
        .get(&format!("/schedules/{}", s["id"].as_str().unwrap()))
        .await;
    assert!(ms(&after["next_run_at"]) > first, "{after}");
    assert!(after["last_run_at"].is_string(), "{after}");
}

backend_test!(bad_schedules_are_refused_naming_the_field);
async fn bad_schedules_are_refused_naming_the_field(b: Backend) {
    let app = spawn_app(&b).await;
    let wh = app
        .create_webhook(json!({"name": "t", "url": "https://example.com/h"}))
        .await;
    let base = json!({"name": "n", "webhook_id": wh["id"], "cron": "0 2 * * *"});
    let cases = [
        (json!({"cron": "0 2 * *"}), "cron"),
        (json!({"cron": "61 * * * *"}), "cron"),
        (json!({"cron": "0 0 30 2 *"}), "cron"),
        (json!({"timezone": "Mars/Olympus"}), "timezone"),
        (json!({"every_seconds": 60}), "every_seconds"),
        (json!({"cron": null, "every_seconds": 0}), "every_seconds"),
        (json!({"cron": null}), "cron"),
        (
            json!({"cron": null, "every_seconds": 5, "timezone": "UTC"}),
            "timezone",
        ),
        (json!({"message": "{{ oops"}), "message"),
        (json!({"name": " "}), "name"),
        (
            json!({"webhook_id": "wh_01JD8Z0Q9V4W6XKJ3M2N5P7R8S"}),
            "webhook_id",
        ),
        (json!({"webhook_id": "nope"}), "webhook_id"),
        (json!({"active": "yes"}), "active"),
        (json!({"colour": "red"}), "colour"),
    ];
    for (change, field) in cases {
        let mut body = base.clone();
        for (k, v) in change.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        let (status, err) = app.post("/schedules", body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {err}");
        assert_eq!(err["error"]["field"], field, "{body} → {err}");
    }
    let (_, list) = app.get("/schedules").await;
    assert_eq!(list["data"], json!([]), "nothing half-written");
    let (status, _) = app.get("/schedules/sch_01JD8Z0Q9V4W6XKJ3M2N5P7R8S").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.get("/schedules/whatever").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

backend_test!(cron_schedules_show_their_next_runs_and_can_be_edited);
async fn cron_schedules_show_their_next_runs_and_can_be_edited(b: Backend) {
    let app = spawn_app(&b).await;
    let wh = app
        .create_webhook(json!({"name": "t", "url": "https://example.com/h"}))
        .await;
    let s = create(
        &app,
        json!({"name": "nightly", "webhook_id": wh["id"], "cron": "0 2 * * *",
               "timezone": "Europe/Paris"}),
    )
    .await;
    assert_eq!(s["timezone"], "Europe/Paris");
    assert_eq!(s["every_seconds"], Value::Null);
    let runs = s["next_runs"].as_array().unwrap();
    assert_eq!(runs.len(), 5);
    for r in runs {
        let r = r.as_str().unwrap();
        assert!(r.contains("T02:00:00+0"), "02:00 local time: {r}");
    }
    assert_eq!(ms(&s["next_run_at"]), ms(&runs[0]), "the same instant");
    for pair in runs.windows(2) {
        let gap = ms(&pair[1]) - ms(&pair[0]);
        assert!(
            (23..=25).contains(&(gap / 3_600_000)),
            "a day apart: {pair:?}"
        );
    }

    let path = format!("/schedules/{}", s["id"].as_str().unwrap());
    // To an interval: cron and time zone go, the next run is recomputed.
    let (status, p) = app
        .call(
            "PATCH",
            &path,
            Some(json!({"every_seconds": 300, "description": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{p}");
    assert_eq!(
        (p["cron"].clone(), p["timezone"].clone()),
        (Value::Null, Value::Null)
    );
    let next = ms(&p["next_run_at"]);
    let now = hookd_server::now_ms();
    assert!(next > now && next <= now + 300_000, "{p}");
    assert_eq!(p["description"], "x");
    // Paused: no next run. A null removes the description.
    let (_, p) = app
        .call(
            "PATCH",
            &path,
            Some(json!({"active": false, "description": null})),
        )
        .await;
    assert_eq!(p["next_run_at"], Value::Null);
    assert_eq!(p["next_runs"], json!([]));
    assert_eq!(p["description"], Value::Null);
    let (status, err) = app
        .call("PATCH", &path, Some(json!({"cron": "nope"})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["error"]["field"], "cron");
    let (_, unchanged) = app.get(&path).await;
    assert_eq!(
        unchanged["every_seconds"], 300,
        "a refused patch writes nothing"
    );

    let (_, list) = app.get("/schedules?limit=1").await;
    assert_eq!(list["data"][0]["id"], s["id"]);
    let (status, _) = app.call("DELETE", &path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.call("DELETE", &path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

backend_test!(run_now_sends_the_default_payload_without_moving_the_next_run);
async fn run_now_sends_the_default_payload_without_moving_the_next_run(b: Backend) {
    let app = spawn_app(&b).await;
    let rx = TestReceiver::start().await;
    let wh = app
        .create_webhook(json!({"name": "r", "url": rx.url("/h")}))
        .await;
    let s = create(
        &app,
        json!({"name": "weekly", "webhook_id": wh["id"], "cron": "0 9 * * MON",
               "active": false}),
    )
    .await;
    let id = s["id"].as_str().unwrap();
    let (status, run) = app.post(&format!("/schedules/{id}/run"), json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{run}");
    let got = rx.wait_for(1).await;
    let body = got[0].json();
    assert_eq!(body["type"], "schedule.fired");
    assert_eq!(body["data"]["schedule_id"], id);
    assert_eq!(body["data"]["name"], "weekly");
    assert_eq!(body["data"]["manual"], true);
    assert_eq!(got[0].header("webhook-id"), run["delivery_id"].as_str());
    let d = app
        .wait_delivery(run["delivery_id"].as_str().unwrap(), |d| {
            d["status"] == "succeeded"
        })
        .await;
    assert_eq!(d["schedule_id"], id);
    assert_eq!(d["occurrence"], run["occurrence"]);
    let (_, after) = app.get(&format!("/schedules/{id}")).await;
    assert_eq!(after["next_run_at"], Value::Null, "still paused");
    assert_eq!(after["last_run_at"], run["occurrence"]);

    let (status, _) = app
        .post("/schedules/sch_01JD8Z0Q9V4W6XKJ3M2N5P7R8S/run", json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

backend_test!(a_message_names_its_schedule);
async fn a_message_names_its_schedule(b: Backend) {
    let app = spawn_app(&b).await;
    let rx = TestReceiver::start().await;
    let wh = app
        .create_webhook(json!({"name": "chat", "url": rx.url("/h")}))
        .await;
    let s = create(
        &app,
        json!({"name": "nightly", "webhook_id": wh["id"], "cron": "0 2 * * *",
               "active": false,
               "message": "{\"text\": \"tick {{ schedule.name }} ({{ schedule.skipped }} skipped)\"}"}),
    )
    .await;
    let id = s["id"].as_str().unwrap();
    let (status, run) = app.post(&format!("/schedules/{id}/run"), json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{run}");
    let got = rx.wait_for(1).await;
    assert_eq!(got[0].json(), json!({"text": "tick nightly (0 skipped)"}));
    let d = app
        .wait_delivery(run["delivery_id"].as_str().unwrap(), |d| {
            d["status"] == "succeeded"
        })
        .await;
    assert_eq!(d["schedule_id"], id);
}

backend_test!(a_schedule_whose_message_does_not_render_says_so);
async fn a_schedule_whose_message_does_not_render_says_so(b: Backend) {
    let app = spawn_app(&b).await;
    let rx = TestReceiver::start().await;
    let wh = app
        .create_webhook(json!({"name": "chat", "url": rx.url("/h")}))
        .await;
    // Compiles, but `ticket` is not a variable of a schedule's message.
    let s = create(
        &app,
        json!({"name": "broken", "webhook_id": wh["id"], "every_seconds": 1,
               "message": "{\"text\": \"{{ ticket.id }}\"}"}),
    )
    .await;
    assert_eq!(s["last_error"], Value::Null);
    let id = s["id"].as_str().unwrap().to_owned();
    let path = format!("/schedules/{id}");
    // The scheduler's firings set it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let broken = loop {
        let (_, got) = app.get(&path).await;
        if !got["last_error"].is_null() {
            break got;
        }
        assert!(Instant::now() < deadline, "never marked: {got}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let error = broken["last_error"].as_str().unwrap();
    assert!(error.starts_with("message: "), "{error}");
    assert!(error.contains("undefined"), "{error}");
    // An edit of anything else keeps it; an edit of the message clears it.
    let (_, renamed) = app
        .call(
            "PATCH",
            &path,
            Some(json!({"name": "still broken", "active": false})),
        )
        .await;
    assert_eq!(renamed["last_error"], broken["last_error"], "{renamed}");
    let (status, fixed) = app
        .call(
            "PATCH",
            &path,
            Some(json!({"message": "{\"text\": \"tick {{ schedule.name }}\"}"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{fixed}");
    assert_eq!(fixed["last_error"], Value::Null);
    // A run by hand proves it, and sends it.
    let (status, run) = app.post(&format!("{path}/run"), json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{run}");
    let (_, after) = app.get(&path).await;
    assert_eq!(after["last_error"], Value::Null, "{after}");
    let got = rx.wait_for(1).await;
    assert!(
        got.iter()
            .any(|r| r.json() == json!({"text": "tick still broken"})),
        "the fixed message arrives"
    );
    // Broken again, and run by hand: marked at once.
    app.call("PATCH", &path, Some(json!({"message": "{{ nope.x }}"})))
        .await;
    let (_, _) = app.post(&format!("{path}/run"), json!({})).await;
    let (_, marked) = app.get(&path).await;
    assert!(
        marked["last_error"]
            .as_str()
            .unwrap()
            .starts_with("message: "),
        "{marked}"
    );
    let (_, list) = app.get("/schedules").await;
    assert_eq!(list["data"][0]["last_error"], marked["last_error"]);
}

backend_test!(a_preview_shows_the_request_a_firing_would_send);
async fn a_preview_shows_the_request_a_firing_would_send(b: Backend) {
    let app = spawn_app(&b).await;
    let rx = TestReceiver::start().await;
    let wh = app
        .create_webhook(json!({"name": "chat", "url": rx.url("/notify"),
            "auth": {"type": "bearer", "token": "xoxb-secret-token"}}))
        .await;
    let schedule = json!({"name": "nightly", "webhook_id": wh["id"], "cron": "0 2 * * *",
        "timezone": "Europe/Paris",
        "message": "{\"text\": \"tick {{ schedule.name }} at {{ schedule.occurrence }}\"}"});
    let (status, unsaved) = app.post("/schedules/preview", schedule.clone()).await;
    assert_eq!(status, StatusCode::OK, "{unsaved}");
    assert_eq!(unsaved["method"], "POST");
    assert_eq!(unsaved["url"], rx.url("/notify"));
    let body: Value = serde_json::from_str(unsaved["body"].as_str().unwrap()).unwrap();
    let text = body["text"].as_str().unwrap();
    assert!(text.starts_with("tick nightly at "), "{text}");
    let occurrence = text.trim_start_matches("tick nightly at ").to_owned();
    let headers = unsaved["headers"].as_array().unwrap();
    let header = |name: &str| {
        headers
            .iter()
            .find(|h| h[0].as_str().unwrap().eq_ignore_ascii_case(name))
            .map(|h| h[1].as_str().unwrap().to_owned())
    };
    assert_eq!(header("authorization").as_deref(), Some("Bearer ****"));
    assert!(header("webhook-signature").is_some());
    // Nothing was stored or sent.
    let (_, list) = app.get("/schedules").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);

    // A saved schedule: the same request for its next occurrence.
    let saved = create(&app, schedule.clone()).await;
    // The occurrence previewed is the next one: 02:00 in Paris.
    assert_eq!(ms(&saved["next_run_at"]), ms(&json!(occurrence)), "{saved}");
    let local = saved["next_runs"][0].as_str().unwrap();
    assert!(local.contains("T02:00:00+0"), "{local}");
    let id = saved["id"].as_str().unwrap();
    let (status, again) = app
        .post(&format!("/schedules/{id}/preview"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["body"], unsaved["body"]);
    assert_eq!(rx.received().len(), 0);

    // What would fail a firing is refused, naming the field.
    let mut bad = schedule.clone();
    bad["message"] = json!("{{ ticket.id }}");
    let (status, err) = app.post("/schedules/preview", bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["error"]["field"], "message");
    let mut no_timing = schedule.clone();
    no_timing.as_object_mut().unwrap().remove("cron");
    let (status, err) = app.post("/schedules/preview", no_timing).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["error"]["field"], "cron");
    let (status, _) = app
        .post(
            "/schedules/sch_0000000000000000000000000/preview",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

backend_test!(missed_occurrences_fire_once_after_downtime);
async fn missed_occurrences_fire_once_after_downtime(b: Backend) {
    // An API without a worker: nothing fires while the schedule is made and set ten minutes back.
    let api = spawn_app_with(&b, test_settings(), WorkerMode::Separate).await;
    let rx = TestReceiver::start().await;
    let wh = api
        .create_webhook(json!({"name": "r", "url": rx.url("/h")}))
        .await;
    let s = create(
        &api,
        json!({"name": "minutely", "webhook_id": wh["id"], "every_seconds": 60}),
    )
    .await;
    let id = ScheduleId::parse(s["id"].as_str().unwrap()).unwrap();
    let mut stored = api.store.get_schedule(&id).await.unwrap().unwrap();
    let down_since = hookd_server::now_ms() - 10 * 60_000 - 5_000;
    let read_version = stored.version;
    stored.next_run_at = Some(down_since);
    stored.version += 1;
    let written = api
        .store
        .update_schedule(&stored, read_version)
        .await
        .unwrap();
    assert_eq!(written, hookd_core::store::Written::Done);

    // A worker comes back: one firing stands for the eleven missed occurrences.
    let _worker = spawn_on(api.store.clone(), test_settings(), WorkerMode::Embedded).await;
    let got = rx.wait_for(1).await;
    let body = got[0].json();
    assert_eq!(body["data"]["skipped"], 10, "{body}");
    assert_eq!(
        ms(&body["data"]["occurrence"]),
        down_since + 10 * 60_000,
        "the latest missed occurrence"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let (_, after) = api.get(&format!("/schedules/{id}")).await;
        if after["last_run_at"].is_string() {
            break after;
        }
        assert!(Instant::now() < deadline, "never fired: {after}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let next = ms(&after["next_run_at"]);
    assert!(
        next > hookd_server::now_ms(),
        "the next run is ahead: {after}"
    );
    assert_eq!(next, down_since + 11 * 60_000, "the phase is kept");
    let made = deliveries_of_webhook(&api, wh["id"].as_str().unwrap()).await;
    assert_eq!(made.len(), 1, "fired once, not once per miss: {made:?}");
}

backend_test!(several_workers_fire_each_occurrence_once);
async fn several_workers_fire_each_occurrence_once(b: Backend) {
    let api = spawn_app_with(&b, test_settings(), WorkerMode::Separate).await;
    let rx = TestReceiver::start().await;
    let wh = api
        .create_webhook(json!({"name": "r", "url": rx.url("/h")}))
        .await;
    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(spawn_on(api.store.clone(), test_settings(), WorkerMode::Embedded).await);
    }
    create(
        &api,
        json!({"name": "every second", "webhook_id": wh["id"], "every_seconds": 1}),
    )
    .await;
    let got = rx.wait_for(4).await;
    drop(workers);
    // Each occurrence once: consecutive occurrences are one period apart, or as many periods as
    // the firing says it folded in.
    let mut fired: Vec<(i64, i64)> = got
        .iter()
        .map(|r| {
            let data = &r.json()["data"];
            (ms(&data["occurrence"]), data["skipped"].as_i64().unwrap())
        })
        .collect();
    fired.sort();
    for pair in fired.windows(2) {
        let ((a, _), (b, skipped)) = (pair[0], pair[1]);
        assert_eq!(b - a, 1000 * (1 + skipped), "occurrences {fired:?}");
    }
    let ids: std::collections::HashSet<_> = got
        .iter()
        .map(|r| r.header("webhook-id").unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), got.len(), "no delivery sent twice");
}
