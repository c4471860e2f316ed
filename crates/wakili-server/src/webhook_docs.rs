//! The `webhooks` section of the OpenAPI document (OpenAPI 3.1): one entry per event, its body
//! (`{"type", "timestamp", "data"}` with the event's `data` schema) and the Standard Webhooks
//! signature headers, so a receiver can generate its types and checks from the same document
//! as the API.

use utoipa::{
    PartialSchema, ToSchema,
    openapi::{
        ContentBuilder, HttpMethod, ObjectBuilder, OpenApi, PathItem, PathsBuilder, Ref, Required,
        ResponseBuilder, SchemaFormat, Type,
        path::{OperationBuilder, ParameterBuilder, ParameterIn},
        request_body::RequestBodyBuilder,
        schema::KnownFormat,
    },
};
use wakili_core::webhook::{
    ConsentData, ConsultationData, DevicePrunedData, EventType, ParticipantData,
    QualityDegradedData, RecordingData, RecordingFinishedData, RecordingLinks, TrackSummary,
};

/// The `data` schema of `event`, by name.
fn data_schema(event: EventType) -> &'static str {
    use EventType as E;
    match event {
        E::ConsultationBooked
        | E::ConsultationRescheduled
        | E::ConsultationCancelled
        | E::ConsultationStarted
        | E::ConsultationEnded => "ConsultationData",
        E::ParticipantWaiting
        | E::ParticipantAdmitted
        | E::ParticipantJoined
        | E::ParticipantLeft
        | E::ParticipantReconnecting => "ParticipantData",
        E::RecordingStarted | E::RecordingStopped | E::RecordingDeleted => "RecordingData",
        E::RecordingReady | E::RecordingIncomplete => "RecordingFinishedData",
        E::ConsentGiven | E::ConsentRefused => "ConsentData",
        E::DevicePruned => "DevicePrunedData",
        E::QualityDegraded => "QualityDegradedData",
    }
}

/// What each event means, for the document.
fn summary(event: EventType) -> &'static str {
    use EventType as E;
    match event {
        E::ConsultationBooked => "A consultation was booked",
        E::ConsultationRescheduled => "A consultation's time or length changed",
        E::ConsultationCancelled => "A consultation was called off",
        E::ConsultationStarted => "The call began",
        E::ConsultationEnded => "The call is over",
        E::ParticipantWaiting => "Someone is in the waiting room",
        E::ParticipantAdmitted => "The lawyer let someone in",
        E::ParticipantJoined => "Someone joined the call",
        E::ParticipantLeft => "Someone left for good",
        E::ParticipantReconnecting => "Someone's connection dropped; they may resume",
        E::RecordingStarted => "Everyone consented: the recording runs",
        E::RecordingStopped => "The recording was stopped",
        E::RecordingReady => "The recording is complete, its manifest signed",
        E::RecordingIncomplete => "The recording closed with parts missing (signed, gaps listed)",
        E::RecordingDeleted => "The recording was deleted",
        E::ConsentGiven => "A participant consented to being recorded",
        E::ConsentRefused => "A participant refused to be recorded",
        E::DevicePruned => "A device stopped receiving push notifications",
        E::QualityDegraded => "A participant's connection quality stayed poor",
    }
}

fn header(name: &str, description: &str) -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Header)
        .required(Required::True)
        .description(Some(description))
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .build()
}

/// Adds the `webhooks` section and the `data` schemas it refers to.
pub(crate) fn document(mut openapi: OpenApi) -> OpenApi {
    let components = openapi.components.get_or_insert_with(Default::default);
    for (name, schema) in [
        (ConsultationData::name(), ConsultationData::schema()),
        (ParticipantData::name(), ParticipantData::schema()),
        (RecordingData::name(), RecordingData::schema()),
        (
            RecordingFinishedData::name(),
            RecordingFinishedData::schema(),
        ),
        (RecordingLinks::name(), RecordingLinks::schema()),
        (TrackSummary::name(), TrackSummary::schema()),
        (ConsentData::name(), ConsentData::schema()),
        (DevicePrunedData::name(), DevicePrunedData::schema()),
        (QualityDegradedData::name(), QualityDegradedData::schema()),
    ] {
        components.schemas.insert(name.into_owned(), schema);
    }
    let mut paths = PathsBuilder::new();
    for event in EventType::ALL {
        let body = ObjectBuilder::new()
            .property(
                "type",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some([event.as_str()])),
            )
            .required("type")
            .property(
                "timestamp",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
                    .description(Some("When the change happened")),
            )
            .required("timestamp")
            .property("data", Ref::from_schema_name(data_schema(event)))
            .required("data");
        let operation = OperationBuilder::new()
            .operation_id(Some(event.as_str().replace('.', "_")))
            .summary(Some(summary(event)))
            .tag("webhooks")
            .parameter(header(
                "webhook-id",
                "The event's id: the same on every attempt and redelivery; dedupe by it",
            ))
            .parameter(header(
                "webhook-timestamp",
                "Seconds since the epoch at this attempt; refuse ones far from now",
            ))
            .parameter(header(
                "webhook-signature",
                "`v1,<base64 HMAC-SHA256 of id.timestamp.body>`, space-separated: two during \
                 a secret rotation",
            ))
            .request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content(
                        "application/json",
                        ContentBuilder::new().schema(Some(body)).build(),
                    )
                    .build(),
            ))
            .response(
                "2XX",
                ResponseBuilder::new().description("Delivered").build(),
            )
            .response(
                "410",
                ResponseBuilder::new()
                    .description("The endpoint is gone: stop sending and disable it")
                    .build(),
            )
            .response(
                "default",
                ResponseBuilder::new()
                    .description(
                        "Anything else (or no answer within the timeout) is retried with \
                         backoff for 24 h, no sooner than Retry-After",
                    )
                    .build(),
            );
        paths = paths.path(event.as_str(), PathItem::new(HttpMethod::Post, operation));
    }
    openapi.webhooks = Some(paths.build());
    openapi
}
