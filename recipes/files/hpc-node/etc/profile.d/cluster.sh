# Installed by compose (recipes/hpc-node.toml): cluster-wide shell settings.
CLUSTER_NAME=$(cat /etc/cluster-name 2>/dev/null || echo cluster)
export CLUSTER_NAME
