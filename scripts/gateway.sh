# Sourced by scripts that run their own redis-server and gateway (demo,
# bench-webrtc). Needs $root and $tmp; fills $pids with what to stop.
# shellcheck shell=bash

model=${CALLSCRIBE_MODEL:-$root/../shared/models/sherpa-onnx-kws-zipformer-gigaspeech-3.3M-2024-01-01-mobile}
pids=()

stop_all() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}

free_port() { # a TCP/UDP port nobody listens on, in 20000-39999
  local p
  for _ in $(seq 1 100); do
    p=$((20000 + RANDOM % 20000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  echo "no free port" >&2; exit 1
}

# start_redis: a redis-server of our own; sets REDIS_ADDR.
start_redis() {
  local port
  port=$(free_port)
  redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no >"$tmp/redis.log" 2>&1 &
  pids+=($!)
  REDIS_ADDR=127.0.0.1:$port
  for _ in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
}

# start_gateway RTP_PORTS [FLAGS...]: bin/callscribe serve on free ports
# (with FLAGS, e.g. -config FILE), waited for until ready; sets SIP_ADDR and
# HTTP_ADDR.
start_gateway() {
  SIP_ADDR=127.0.0.1:$(free_port)
  HTTP_ADDR=127.0.0.1:$(free_port)
  bin/callscribe serve -sip "$SIP_ADDR" -http "$HTTP_ADDR" -redis "$REDIS_ADDR" -model "$model" \
    -rtp-ports "$@" >"$tmp/gateway.log" 2>&1 &
  pids+=($!)
  # Up to 30 s: the recognizer measures itself, a second pass loads and
  # measures too.
  for _ in $(seq 1 300); do
    curl -fs "http://$HTTP_ADDR/readyz" >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "gateway not ready:"; cat "$tmp/gateway.log"; exit 1
}
