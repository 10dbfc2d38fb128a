# shellcheck shell=bash disable=SC2034 # COMPONENTS: read by components.sh
# Lanes: which emulator serves which AWS API (stack.env's MODELWATCH_LANE).
#   all-moto    moto serves every AWS API (the default)
#   localstack  SNS, SQS and CloudWatch on LocalStack's runtime, routed with the
#               SDK's AWS_ENDPOINT_URL_<SERVICE>; DynamoDB and Timestream on moto

# Every component `up` may start, in start order (down stops them in reverse):
# the emulators, then the Lambda emulator, then one process per function, then the
# HTTP API's gateway, then the shard queues' poller (Lambda's SQS event source
# mappings).
ALL_COMPONENTS=(moto localstack prometheus lambda "${FUNCTIONS[@]}" gateway shards)

# set_lane <lane>: LANE and COMPONENTS, the components that lane runs.
set_lane() {
  LANE=$1
  if [[ $LANE == localstack ]]; then
    COMPONENTS=("${ALL_COMPONENTS[@]}")
  else
    COMPONENTS=(moto prometheus lambda "${FUNCTIONS[@]}" gateway shards)
  fi
}

# The lane the running stack was started in (empty when none).
saved_lane() {
  [[ -f $RUN_DIR/lane ]] && cat "$RUN_DIR/lane"
  return 0
}

# What provision.py needs to know about the lane: the SDK's per-service endpoint
# variables send SNS, SQS and CloudWatch to LocalStack, and the topic, the queues
# and the subscriber are made there.
lane_provision_args() {
  printf '%s\n' --stack-env "MODELWATCH_LANE=$LANE"
  [[ $LANE == localstack ]] || return 0
  printf '%s\n' \
    --service-endpoint "sns=$LOCALSTACK_URL" \
    --service-endpoint "sqs=$LOCALSTACK_URL" \
    --function-env "AWS_ENDPOINT_URL_SNS=$LOCALSTACK_URL" \
    --function-env "AWS_ENDPOINT_URL_SQS=$LOCALSTACK_URL" \
    --function-env "AWS_ENDPOINT_URL_CLOUDWATCH=$LOCALSTACK_URL" \
    --stack-env "LOCALSTACK_URL=$LOCALSTACK_URL"
}

if [[ ${MODELWATCH_LOCALSTACK:-0} == 1 ]]; then
  set_lane localstack
else
  set_lane all-moto
fi
