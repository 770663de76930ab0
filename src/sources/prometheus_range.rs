//! Range queries, for `liftoff simulate`: one `/api/v1/query_range` answer holds what the
//! instant query a trigger or gate runs would have returned at every step, and
//! [`RangeAnswer::at`] gives each of those answers with the same rules as [`parse_response`]
//! (no series, several series, NaN: the same errors, so a replay decides as the operator did).
//!
//! [`parse_response`]: super::parse_response

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{ApiResponse, Client, QueryError, finite, invalid};

/// The most points Prometheus returns per series in one range query (its own limit is 11,000).
pub const MAX_POINTS: i64 = 10_000;

/// A range query's answer: each series' points, by time in milliseconds since the epoch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RangeAnswer {
    series: Vec<BTreeMap<i64, Point>>,
}

#[derive(Clone, Debug, PartialEq)]
enum Point {
    Float(String),
    Histogram,
}

#[derive(Deserialize)]
struct MatrixSeries {
    #[serde(default)]
    values: Vec<(serde_json::Value, String)>,
    #[serde(default)]
    histograms: Vec<(serde_json::Value, serde::de::IgnoredAny)>,
}

impl RangeAnswer {
    /// What the instant query would have answered at `at_ms`: the single series' value, or the
    /// error the operator would have recorded (no series, several, not a number).
    pub fn at(&self, at_ms: i64) -> Result<f64, QueryError> {
        let points: Vec<&Point> = self.series.iter().filter_map(|s| s.get(&at_ms)).collect();
        match points.as_slice() {
            [] => Err(QueryError::NoSeries),
            [Point::Float(value)] => finite(value),
            [Point::Histogram] => Err(QueryError::Histogram),
            many => Err(QueryError::ManySeries { count: many.len() }),
        }
    }

    /// Adds the series of another answer (the next chunk of the same query).
    pub fn extend(&mut self, other: RangeAnswer) {
        self.series.extend(other.series);
    }
}

impl Client {
    /// Runs `promql` as a range query from `start` to `end` (seconds since the epoch, both
    /// included) every `step` seconds. At most [`MAX_POINTS`] steps per call.
    pub async fn query_range(
        &self,
        promql: &str,
        start: i64,
        end: i64,
        step: u64,
    ) -> Result<RangeAnswer, QueryError> {
        let url = self
            .query_url
            .join("query_range")
            .map_err(|_| invalid("the query_range address cannot be formed"))?;
        let (start, end, step) = (start.to_string(), end.to_string(), step.to_string());
        let params = [
            ("query", promql),
            ("start", &start),
            ("end", &end),
            ("step", &step),
        ];
        let (status, body) = self.get(url, &params).await?;
        parse_range_response(status, &body).map_err(|e| self.unusable(e, status, &body))
    }
}

/// Turns an `/api/v1/query_range` answer into its series. A scalar expression gives a matrix
/// of one series without labels, as Prometheus answers it.
pub fn parse_range_response(status: u16, body: &str) -> Result<RangeAnswer, QueryError> {
    if !(200..300).contains(&status) {
        return Err(QueryError::Http {
            address: String::new(),
            status,
        });
    }
    let response: ApiResponse = serde_json::from_str(body)
        .map_err(|_| invalid("the answer is not a Prometheus API response"))?;
    if response.status != "success" {
        return Err(QueryError::Rejected {
            error_type: super::ApiErrorType::parse(response.error_type.as_deref()),
        });
    }
    let data = response
        .data
        .ok_or_else(|| invalid("\"data\" is missing"))?;
    if data.result_type != "matrix" {
        return Err(invalid("a range query did not answer with a matrix"));
    }
    let matrix: Vec<MatrixSeries> = serde_json::from_value(data.result)
        .map_err(|_| invalid("the matrix result is malformed"))?;
    let millis = |t: &serde_json::Value| {
        t.as_f64()
            .filter(|t| t.is_finite())
            .map(|t| (t * 1000.0).round() as i64)
            .ok_or_else(|| invalid("a sample time is not a number"))
    };
    let mut series = Vec::with_capacity(matrix.len());
    for s in matrix {
        let mut points = BTreeMap::new();
        for (t, value) in s.values {
            points.insert(millis(&t)?, Point::Float(value));
        }
        for (t, _) in s.histograms {
            points.insert(millis(&t)?, Point::Histogram);
        }
        series.push(points);
    }
    Ok(RangeAnswer { series })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(body: &str) -> RangeAnswer {
        parse_range_response(200, body).unwrap()
    }

    #[test]
    fn each_step_answers_as_the_instant_query_would() {
        let a = answer(
            r#"{"status":"success","data":{"resultType":"matrix","result":[
                {"metric":{"pod":"a"},"values":[[100,"1.5"],[115,"NaN"],[130,"2"]]},
                {"metric":{"pod":"b"},"values":[[130,"3"]]}]}}"#,
        );
        assert_eq!(a.at(100_000), Ok(1.5));
        assert_eq!(a.at(115_000), Err(QueryError::NotFinite { value: "NaN" }));
        assert_eq!(a.at(130_000), Err(QueryError::ManySeries { count: 2 }));
        assert_eq!(a.at(145_000), Err(QueryError::NoSeries));
    }

    #[test]
    fn an_answer_that_is_not_a_matrix_is_refused() {
        let vector = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert!(matches!(
            parse_range_response(200, vector),
            Err(QueryError::InvalidBody { .. })
        ));
        assert!(matches!(
            parse_range_response(503, "busy"),
            Err(QueryError::Http { status: 503, .. })
        ));
        let rejected = r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#;
        assert!(matches!(
            parse_range_response(200, rejected),
            Err(QueryError::Rejected { .. })
        ));
    }
}
