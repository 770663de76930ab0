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
    for (text, shown) in [
        ("NaN", "NaN"),
        ("+Inf", "+Inf"),
        ("-Inf", "-Inf"),
        ("inf", "+Inf"),
    ] {
        let body = vector(&ONE.replace("73.5", text));
        let err = parse_response(200, &body).unwrap_err();
        assert_eq!(err, QueryError::NotFinite { value: shown });
        assert!(
            err.to_string()
                .starts_with(&format!("query returned {shown}, "))
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
            result_type: "matrix"
        }
    );
    assert!(err.to_string().contains("no [5m] range"), "{err}");
    let string = r#"{"status":"success","data":{"resultType":"string","result":[1,"hi"]}}"#;
    assert!(matches!(
        parse_response(200, string),
        Err(QueryError::UnsupportedResultType {
            result_type: "string"
        })
    ));
}

#[test]
fn native_histogram_is_refused() {
    let body = vector(r#"{"metric":{},"histogram":[1,{"count":"3","sum":"1","buckets":[]}]}"#);
    assert_eq!(parse_response(200, &body), Err(QueryError::Histogram));
}

/// What a server sends is never quoted: an address can point at any server the operator
/// reaches (a cloud metadata service, another tenant's), and the error text ends up in the
/// policy's status and Events. Each answer below carries a marker where an error used to quote
/// the body.
const MARKER: &str = "i-0SECRET";

#[test]
fn http_errors_are_told_by_status_never_by_body() {
    let prometheus_error =
        format!(r#"{{"status":"error","errorType":"bad_data","error":"parse error {MARKER}"}}"#);
    let cases = [
        (
            400,
            prometheus_error.as_str(),
            "answered HTTP 400: a bad request, usually a query that is not valid PromQL",
        ),
        (
            401,
            MARKER,
            "answered HTTP 401: not authorized: check spec.prometheus.authSecretRef",
        ),
        (
            302,
            MARKER,
            "answered HTTP 302: a redirect, which Liftoff does not follow",
        ),
        (
            404,
            MARKER,
            "answered HTTP 404: no query API at this address",
        ),
        (502, MARKER, "answered HTTP 502: a server error"),
    ];
    for (status, body, expected) in cases {
        let err = parse_response(status, body)
            .unwrap_err()
            .at("http://prom:9090");
        let text = err.to_string();
        assert!(
            text.starts_with("Prometheus at http://prom:9090 "),
            "{text}"
        );
        assert!(text.contains(expected), "{status}: {text}");
        assert!(!text.contains(MARKER), "{status}: {text}");
    }
}

#[test]
fn a_rejection_names_its_type_from_prometheus_fixed_set_only() {
    let body = |error_type: &str| {
        format!(r#"{{"status":"error","errorType":"{error_type}","error":"{MARKER}"}}"#)
    };
    let err = parse_response(200, &body("execution")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Prometheus rejected the query (execution): the query failed while Prometheus evaluated it"
    );
    let err = parse_response(200, &body(MARKER)).unwrap_err();
    assert_eq!(
        err,
        QueryError::Rejected {
            error_type: ApiErrorType::Unknown
        }
    );
    assert!(!err.to_string().contains(MARKER), "{err}");
}

#[test]
fn bodies_that_are_not_query_results_are_invalid_and_never_quoted() {
    let cases = [
        (format!("instance-id: {MARKER}"), "the answer is not JSON"),
        (r#"{"status":"success"}"#.to_string(), "\"data\" is missing"),
        (
            format!(r#"{{"status":{{"x":"{MARKER}"}}}}"#),
            "the JSON is not a Prometheus API response",
        ),
        (
            r#"{"status":"success","data":{"resultType":"vector","result":{}}}"#.to_string(),
            "the vector result is malformed",
        ),
        (
            format!(
                r#"{{"status":"success","data":{{"resultType":"scalar","result":[1,"{MARKER}"]}}}}"#
            ),
            "a sample value is not a number",
        ),
        (
            vector(&ONE.replace("73.5", MARKER)),
            "a sample value is not a number",
        ),
        (
            format!(r#"{{"status":"success","data":{{"resultType":"{MARKER}","result":[]}}}}"#),
            "the result type is not one Prometheus has",
        ),
    ];
    for (body, reason) in cases {
        let err = parse_response(200, &body).unwrap_err().at("http://p");
        assert_eq!(
            err,
            QueryError::InvalidBody {
                address: "http://p".into(),
                reason
            },
            "{body}"
        );
        let text = err.to_string();
        assert!(
            text.starts_with("the server at http://p is not a Prometheus query API"),
            "{text}"
        );
        assert!(!text.contains(MARKER), "{text}");
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
