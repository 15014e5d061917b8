// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;

namespace CustomAutograd.Native;

// Mirror of ca_stats.
[StructLayout(LayoutKind.Sequential)]
internal struct CaStats
{
    public long LiveNodes;
    public long LiveSaved;
    public long LiveClosures;
    public long PooledNodes;
    public long NodesCreated;
    public long BackwardCalls;
    public long BackwardFailures;
}
