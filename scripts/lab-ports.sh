# Sourced by the scripts that start labs.
# The labs listen on fixed loopback ports inside Linux's ephemeral range (55000-58999): keep the kernel from
# handing those out to outgoing connections, which would make a lab server's bind fail at random.
reserve_lab_ports() {
  local f=/proc/sys/net/ipv4/ip_local_reserved_ports
  if [ -w "$f" ] && ! grep -q '55000-58999' "$f"; then
    local existing
    existing=$(cat "$f")
    echo "55000-58999${existing:+,$existing}" > "$f" || true
  fi
}
