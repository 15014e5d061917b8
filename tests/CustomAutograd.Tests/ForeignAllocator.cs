// SPDX-License-Identifier: MIT
using System;
using System.Threading;
using NUnit.Framework;

namespace CustomAutograd.Tests;

/// <summary>
/// With <c>CUSTOMAUTOGRAD_TEST_ALLOCATOR=1</c>, a thread allocates for the whole run, so that garbage collections
/// land inside native calls: the condition under which TorchSharp 0.107 frees a temporary Scalar mid-call (Note [kept
/// scalars]) and under which a heap measurement must not count other threads' allocations. Off by default; the
/// library, the shared test functions and every test that loops or runs threads pass under it.
/// </summary>
[SetUpFixture]
public sealed class ForeignAllocator
{
    private volatile bool _stop;
    private Thread? _thread;

    /// <summary>Starts the allocating thread when the variable asks for it.</summary>
    [OneTimeSetUp]
    public void Start()
    {
        if (Environment.GetEnvironmentVariable("CUSTOMAUTOGRAD_TEST_ALLOCATOR") != "1")
            return;
        _thread = new Thread(() =>
        {
            object? last = null;
            while (!_stop)
                last = new byte[256];
            GC.KeepAlive(last);
        })
        { IsBackground = true, Name = "ForeignAllocator" };
        _thread.Start();
    }

    /// <summary>Stops it.</summary>
    [OneTimeTearDown]
    public void Stop()
    {
        _stop = true;
        _thread?.Join();
    }
}
