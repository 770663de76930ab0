//! Response parsing on JSON strings as Prometheus sends them, and client construction (no network).

use super::*;

fn vector(samples: &str) -> String {
    format!(r#"{{"status":"success","data":{{"resultType":"vector","result":[{samples}]}}}}"#)
}

const ONE: &str = r#"{"metric":{"job":"api"},"value":[1718000000.123,"73.5"]}"#;

#[test]
fn single_series_vector_gives_its_value() {
    assert_eq!(parse_response(200, &vector(ONE)), Ok(73.5));
}

#[test]
fn scalar_gives_its_value() {
    let body = r#"{"status":"success","data":{"resultType":"scalar","result":[1718000000,"42"]}}"#;
    assert_eq!(parse_response(200, body), Ok(42.0));
}

#[test]
fn empty_vector_is_no_series() {
    let err = parse_response(200, &vector("")).unwrap_err();
    assert_eq!(err, QueryError::NoSeries);
    assert_eq!(err.to_string(), "query returned no series");
}

#[test]
fn several_series_ask_for_aggregation() {
    let two = format!("{ONE},{}", ONE.replace("api", "web"));
    let err = parse_response(200, &vector(&two)).unwrap_err();
    assert_eq!(err, QueryError::ManySeries { count: 2 });
    assert_eq!(
        err.to_string(),
        "query returned 2 series; aggregate it to one, e.g. with sum() or max()"
    );
}

#[test]
fn nan_and_infinities_are_errors() {
    for text in ["NaN", "+Inf", "-Inf"] {
        let body = vector(&ONE.replace("73.5", text));
        let err = parse_response(200, &body).unwrap_err();
        assert_eq!(err, QueryError::NotFinite { value: text.into() });
        assert!(
            err.to_string()
                .starts_with(&format!("query returned {text}, "))
        );
    }
    let scalar = r#"{"status":"success","data":{"resultType":"scalar","result":[1,"NaN"]}}"#;
    assert!(matches!(
        parse_response(200, scalar),
        Err(QueryError::NotFinite { .. })
    ));
}

#[test]
fn matrix_and_string_results_are_unsupported() {
    let matrix = r#"{"status":"success","data":{"resultType":"matrix","result":[
        {"metric":{},"values":[[1,"1"],[2,"2"]]}]}}"#;
    let err = parse_response(200, matrix).unwrap_err();
    assert_eq!(
        err,
        QueryError::UnsupportedResultType {
            result_type: "matrix".into()
        }
    );
    assert!(err.to_string().contains("no [5m] range"), "{err}");
    let string = r#"{"status":"success","data":{"resultType":"string","result":[1,"hi"]}}"#;
    assert!(matches!(
        parse_response(200, string),
        Err(QueryError::UnsupportedResultType { result_type }) if result_type == "string"
    ));
}

#[test]
fn native_histogram_is_refused() {
    let body = vector(r#"{"metric":{},"histogram":[1,{"count":"3","sum":"1","buckets":[]}]}"#);
    assert_eq!(parse_response(200, &body), Err(QueryError::Histogram));
}

#[test]
fn http_error_status_carries_prometheus_error_text() {
    let body = r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:5: parse error: unclosed left parenthesis"}"#;
    let err = parse_response(400, body)
        .unwrap_err()
        .at("http://prom:9090");
    assert_eq!(
        err.to_string(),
        "Prometheus at http://prom:9090 answered HTTP 400: invalid parameter \"query\": 1:5: \
         parse error: unclosed left parenthesis"
    );
}

#[test]
fn http_error_status_without_json_quotes_the_body_shortly() {
    let html = format!(
        "<html>\n<body>502 Bad Gateway{}</body></html>",
        " x".repeat(500)
    );
    let err = parse_response(502, &html).unwrap_err();
    let QueryError::Http {
        status, message, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(*status, 502);
    assert!(
        message.starts_with("\"<html> <body>502 Bad Gateway"),
        "{message}"
    );
    assert!(message.ends_with('…') && message.len() < 260, "{message}");
}

#[test]
fn status_error_with_http_200_is_a_rejection() {
    let body = r#"{"status":"error","errorType":"execution","error":"query timed out"}"#;
    let err = parse_response(200, body).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Prometheus rejected the query (execution): query timed out"
    );
}

#[test]
fn bodies_that_are_not_query_results_are_invalid() {
    for body in [
        "not json",
        r#"{"status":"success"}"#,
        r#"{"status":"success","data":{"resultType":"vector","result":{}}}"#,
        r#"{"status":"success","data":{"resultType":"scalar","result":[1,"abc"]}}"#,
    ] {
        let err = parse_response(200, body).unwrap_err().at("http://p");
        assert!(
            matches!(&err, QueryError::InvalidBody { address, .. } if address == "http://p"),
            "{body}: {err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("Prometheus at http://p sent a response")
        );
    }
}

#[test]
fn auth_debug_output_hides_secrets() {
    let bearer = Auth::Bearer("tok-123".into());
    let basic = Auth::Basic {
        username: "ops".into(),
        password: "hunter2".into(),
    };
    let shown = format!("{bearer:?} {basic:?}");
    assert!(
        !shown.contains("tok-123") && !shown.contains("hunter2"),
        "{shown}"
    );
    assert!(shown.contains("ops"), "{shown}");
}

#[test]
fn client_takes_credentials_out_of_the_address() {
    let client = Client::new(
        "https://ops:p%40ss@prom.example:9443/prometheus/?x=1",
        None,
        Duration::from_secs(5),
    )
    .expect("valid address");
    assert_eq!(client.address(), "https://prom.example:9443/prometheus");
    assert_eq!(
        client.query_url.as_str(),
        "https://prom.example:9443/prometheus/api/v1/query"
    );
    assert_eq!(
        client.auth,
        Some(Auth::Basic {
            username: "ops".into(),
            password: "p@ss".into()
        })
    );
    let shown = format!("{client:?}");
    assert!(
        !shown.contains("p%40ss") && !shown.contains("p@ss"),
        "{shown}"
    );
}

#[test]
fn explicit_auth_wins_over_address_credentials() {
    let auth = Some(Auth::Bearer("t".into()));
    let client = Client::new("http://u:p@prom:9090", auth.clone(), Duration::from_secs(1)).unwrap();
    assert_eq!(client.auth, auth);
    assert_eq!(client.query_url.as_str(), "http://prom:9090/api/v1/query");
}

#[test]
fn bad_addresses_are_refused_without_showing_passwords() {
    let err = Client::new("ftp://u:secret@prom", None, Duration::from_secs(1)).unwrap_err();
    assert!(matches!(err, Error::UnsupportedScheme { .. }), "{err:?}");
    assert!(!err.to_string().contains("secret"), "{err}");
    let err = Client::new("http://u:secret@", None, Duration::from_secs(1)).unwrap_err();
    assert!(matches!(err, Error::InvalidAddress { .. }), "{err:?}");
    assert!(!err.to_string().contains("secret"), "{err}");
}

#[tokio::test]
async fn a_query_that_waits_a_whole_timeout_for_its_turn_reports_the_server_busy() {
    // Every turn is taken (by other policies' queries); nothing is contacted.
    let turns = std::sync::Arc::new(tokio::sync::Semaphore::new(1));
    let _taken = turns.clone().acquire_owned().await.unwrap();
    let client = Client::new(
        "http://prometheus.invalid:9090",
        None,
        Duration::from_millis(100),
    )
    .unwrap()
    .with_limit(turns);
    let err = client.query_value("up").await.unwrap_err();
    assert_eq!(
        err,
        QueryError::Busy {
            address: "http://prometheus.invalid:9090".into(),
            timeout: Duration::from_millis(100)
        }
    );
    assert!(err.to_string().contains("is busy"), "{err}");
}
