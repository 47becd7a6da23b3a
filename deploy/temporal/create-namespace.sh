#!/bin/sh
# Create the saga's namespace and its search attributes once the server is healthy.
# Idempotent: an existing namespace or attribute is left as it is.
set -eu
NAMESPACE=${DEFAULT_NAMESPACE:-default}
: "${TEMPORAL_ADDRESS:?TEMPORAL_ADDRESS is required}"
# NAME=TYPE pairs, as domain/search_attributes.py SEARCH_ATTRIBUTES lists them.
SEARCH_ATTRIBUTES=${SEARCH_ATTRIBUTES:-"OrderStatus=Keyword CustomerId=Keyword OrderTotal=Int FailedStep=Keyword WaitingOn=Keyword WaitingService=Keyword WaitingSince=Datetime"}

attempt=1
until temporal operator cluster health --address "$TEMPORAL_ADDRESS"; do
  [ "$attempt" -ge 60 ] && { echo "Temporal did not become healthy"; exit 1; }
  attempt=$((attempt + 1)); sleep 2
done

if ! temporal operator namespace describe -n "$NAMESPACE" --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1; then
  temporal operator namespace create -n "$NAMESPACE" --address "$TEMPORAL_ADDRESS"
fi

existing=$(temporal operator search-attribute list -n "$NAMESPACE" --address "$TEMPORAL_ADDRESS")
for pair in $SEARCH_ATTRIBUTES; do
  name=${pair%%=*}; type=${pair#*=}
  if echo "$existing" | grep -qw "$name"; then
    echo "search attribute $name exists"
  else
    temporal operator search-attribute create -n "$NAMESPACE" --address "$TEMPORAL_ADDRESS" \
      --name "$name" --type "$type"
  fi
done
echo "namespace $NAMESPACE ready"
