// SPDX-License-Identifier: MIT
using System;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Threading;
using CustomAutograd.TorchSharpInternals;
using NUnit.Framework;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd.Tests;

/// <summary>Faults, threads, re-entrancy, deep graphs and long runs: nothing crashes, nothing leaks.</summary>
[TestFixture]
[NonParallelizable]
public sealed class ReliabilityTests
{
    // The loops and threads below hand TorchSharp only kept Scalars (Note [kept scalars] in KeptScalars.cs).
    private static readonly Scalar Zero = KeptScalars.Zero, One = KeptScalars.One, Two = KeptScalars.Two;

    [TestCase(typeof(InvalidOperationException))]
    [TestCase(typeof(OperationCanceledException))]
    [TestCase(typeof(NotImplementedException))]
    [TestCase(typeof(NullReferenceException))]
    public void Backward_ThrowsAnyExceptionType_SurfacesWithTypeAndMessage(Type type)
    {
        using var scope = NewDisposeScope();
        var thrown = (Exception)Activator.CreateInstance(type, "payload-" + type.Name)!;
        UnaryFunction f = AutogradFunction.Create("Throws" + type.Name, (ctx, x) => x * 2, (ctx, g) => throw thrown);
        Exception? e = Assert.Catch(() => f.Apply(torch.ones(2, requires_grad: true)).sum().backward());
        Assert.That(e!.Message, Does.Contain("Throws" + type.Name).And.Contain(type.FullName!).And.Contain("payload-" + type.Name));
        Assert.That(AutogradDiagnostics.TryGetBackwardException(e, out Exception? original), Is.True);
        Assert.That(original, Is.SameAs(thrown));
    }

    [Test]
    public void Backward_LibtorchErrorInsideBackward_KeepsLibtorchText()
    {
        using var scope = NewDisposeScope();
        UnaryFunction f = AutogradFunction.Create("BadMatmul", (ctx, x) => x * 2, (ctx, g) => g.mm(torch.ones(5, 7)));
        Exception? e = Assert.Catch(() => f.Apply(torch.ones(2, 3, requires_grad: true)).sum().backward());
        Assert.That(e!.Message, Does.Contain("BadMatmul").And.Contain("cannot be multiplied"));
    }

    [Test]
    public void Backward_FailsWithRetainGraph_RetrySucceeds()
    {
        using var scope = NewDisposeScope();
        int calls = 0;
        UnaryFunction flaky = AutogradFunction.Create(
            "Flaky",
            (ctx, x) =>
            {
                ctx.SaveForBackward(x);
                return x * x;
            },
            (ctx, g) => ++calls == 1 ? throw new TimeoutException("first try fails") : g * 2 * ctx.SavedTensors[0]!);
        Tensor x = torch.tensor(new[] { 1.0, 3.0 }, requires_grad: true);
        Tensor loss = flaky.Apply(x).sum();
        Assert.Catch(() => loss.backward(retain_graph: true));
        loss.backward(retain_graph: true);
        TestUtil.AssertClose(x.grad!, torch.tensor(new[] { 2.0, 6.0 }));
    }

    [Test]
    public void SavedInput_ModifiedInPlaceBeforeBackward_LibtorchVersionError()
    {
        using var scope = NewDisposeScope();
        Tensor leaf = torch.ones(3, requires_grad: true);
        Tensor a = leaf * 1;
        Tensor loss = TestUtil.Relu.Apply(a).sum();
        a.add_(1);
        Exception? e = Assert.Catch(() => loss.backward());
        Assert.That(e!.Message, Does.Contain("TestReLU").And.Contain("modified by an inplace operation"));
    }

    [Test]
    public void SavedOutput_ModifiedInPlaceBeforeBackward_LibtorchVersionError()
    {
        using var scope = NewDisposeScope();
        Tensor x = torch.ones(3, requires_grad: true);
        Tensor y = TestUtil.Sigmoid.Apply(x);
        Tensor loss = (y * 1).sum();
        using (no_grad())
            y.mul_(2);
        Exception? e = Assert.Catch(() => loss.backward());
        Assert.That(e!.Message, Does.Contain("TestSigmoid").And.Contain("modified by an inplace operation"));
    }

    [Test]
    public void Backward_CallsBackwardOnAnotherGraph_ReentrantWorks()
    {
        using var scope = NewDisposeScope();
        UnaryFunction reentrant = AutogradFunction.Create(
            "Reentrant",
            (ctx, x) =>
            {
                ctx.SaveForBackward(x);
                return x.pow(2);
            },
            (ctx, g) =>
            {
                // Computes d(x^2)/dx = 2x by running a separate backward inside this one.
                using var inner = NewDisposeScope();
                Tensor copy = ctx.SavedTensors[0]!.detach().requires_grad_(true);
                using (enable_grad())
                    TestUtil.Sigmoid.Apply(copy).sum().mul(0).add(copy.pow(2).sum()).backward();
                return (g * copy.grad!).MoveToOuterDisposeScope();
            });
        Tensor x = torch.tensor(new[] { 1.0, -2.0 }, requires_grad: true);
        reentrant.Apply(x).sum().backward();
        TestUtil.AssertClose(x.grad!, torch.tensor(new[] { 2.0, -4.0 }));
    }

    [Test]
    public void Chain_10000CustomNodes_BackwardAndFreeWithoutStackOverflow()
    {
        long baseline = TestUtil.WaitForLiveNodes(AutogradDiagnostics.ReadCounters().LiveNodes);
        using (NewDisposeScope())
        {
            Tensor x = torch.ones(4, dtype: ScalarType.Float64, requires_grad: true);
            Tensor y = x;
            for (int i = 0; i < 10_000; i++)
                y = TestUtil.Relu.Apply(y);
            Assert.That(AutogradDiagnostics.ReadCounters().LiveNodes, Is.GreaterThanOrEqualTo(baseline + 10_000));
            y.sum().backward();
            TestUtil.AssertClose(x.grad!, torch.ones(4, dtype: ScalarType.Float64));
        }
        Assert.That(TestUtil.WaitForLiveNodes(baseline), Is.EqualTo(baseline));
    }

    [Test]
    public void Threads_8x1000IndependentGraphs_AllGradientsCorrect()
    {
        const int threads = 8, iterations = 1000;
        int wrong = 0;
        var errors = new System.Collections.Concurrent.ConcurrentQueue<Exception>();
        var workers = new Thread[threads];
        for (int t = 0; t < threads; t++)
        {
            int seed = t;
            workers[t] = new Thread(() =>
            {
                try
                {
                    for (int i = 0; i < iterations; i++)
                    {
                        using var scope = NewDisposeScope();
                        double v = seed + i * 0.001;
                        Tensor x = torch.tensor(new[] { v, -v - 1 }, requires_grad: true);
                        TestUtil.Sigmoid.Apply(TestUtil.Relu.Apply(x)).sum().backward();
                        double s = 1 / (1 + Math.Exp(-v));
                        double expected0 = s * (1 - s);
                        Tensor grad = x.grad!;
                        if (Math.Abs(grad[0].item<double>() - expected0) > 1e-12 || grad[1].item<double>() != 0)
                            Interlocked.Increment(ref wrong);
                    }
                }
                catch (Exception e)
                {
                    errors.Enqueue(e);
                }
            }, 16 * 1024 * 1024);
            workers[t].Start();
        }
        foreach (Thread w in workers)
            Assert.That(w.Join(TimeSpan.FromMinutes(3)), Is.True, "deadlock: a worker did not finish");
        Assert.That(errors, Is.Empty);
        Assert.That(wrong, Is.Zero);
    }

    [Test]
    public void ThreadWithoutDisposeScope_TemporariesOfForwardAndBackward_AllDisposed()
    {
        // On a thread with no dispose scope of its own (as libtorch's engine threads), the library's own scopes
        // around the delegates must dispose every temporary: only what the caller holds stays alive. Counted with
        // TorchSharp's process-wide count of live tensor handles (gradients handed to libtorch leave it when the
        // library passes their handles on; TorchSharp's per-thread statistics would count them as detached).
        long leaked = -1;
        var worker = new Thread(() =>
        {
            UnaryFunction temporaries = AutogradFunction.Create(
                "ManyTemporaries",
                (ctx, x) =>
                {
                    ctx.SaveForBackward(x.mul(One).add(Zero, One)); // two temporaries, one of them saved
                    return x.exp().log().mul(Two);                   // two more, then the output
                },
                (ctx, g) => g.mul(One).add(ctx.SavedTensors[0]!.mul(Zero), One).mul(Two));
            Tensor x = torch.ones(3, requires_grad: true);
            GC.Collect();
            GC.WaitForPendingFinalizers();
            long before = Tensor.TotalCount;
            for (int i = 0; i < 50; i++)
            {
                Tensor y = temporaries.Apply(x);
                Tensor loss = y.sum();
                loss.backward();
                loss.Dispose();
                y.Dispose();
            }
            leaked = Tensor.TotalCount - before;
        });
        worker.Start();
        Assert.That(worker.Join(TimeSpan.FromMinutes(1)), Is.True);
        Assert.That(leaked, Is.Zero, "tensor handles created on the worker thread and never disposed");
    }

    [Test]
    public void TorchSharp0107_InternalsFound_DelegateScopesReusedAndEngineTensorsOutsideScopes()
    {
        // Both optimisations depend on TorchSharp internals; losing them (e.g. another TorchSharp build) must be
        // noticed, not silently cost 0.2 us and 450 bytes per call.
        Tensor x = torch.ones(2, requires_grad: true);
        using (NewDisposeScope())
            TestUtil.Relu.Apply(x).sum().backward();
        Assert.That(CustomAutograd.TorchSharpInternals.DelegateScope.IsPooling, Is.True);
        Assert.That(CustomAutograd.TorchSharpInternals.AdoptedTensors.UsesInternalConstructor, Is.True);
    }

    [Test]
    public void PublicScopeFallback_SameScopeBehaviourAndNoLeaks()
    {
        CustomAutograd.TorchSharpInternals.DelegateScope.SetPooling(false);
        try
        {
            Assert.That(CustomAutograd.TorchSharpInternals.DelegateScope.IsPooling, Is.False);
            DelegateScopes_CallerScopeChainAndStatistics_SameAsWithoutTheFunction();
            DelegateLeavesItsOwnScopeOpen_CallerScopeStillCurrentAfterApply();
            ThreadWithoutDisposeScope_TemporariesOfForwardAndBackward_AllDisposed();
        }
        finally
        {
            CustomAutograd.TorchSharpInternals.DelegateScope.SetPooling(true);
        }
    }

    [Test]
    public void DelegateScopes_CallerScopeChainAndStatistics_SameAsWithoutTheFunction()
    {
        // The Forward and Backward scopes are reused per thread; for the caller they must behave as fresh
        // TorchSharp scopes: the caller's scope is current again afterwards, outputs land in it, temporaries
        // are disposed, and both the process's count of live tensor handles and TorchSharp's per-thread live count
        // (its documented leak probe) return to where they were, although the gradient the Backward returns is
        // released by libtorch, never disposed by TorchSharp.
        UnaryFunction f = AutogradFunction.Create(
            "ScopedTemporaries",
            (ctx, x) =>
            {
                Tensor t = x.mul(2.0);                    // a temporary
                ctx.SaveForBackward(t);
                return t.add(1.0);
            },
            (ctx, g) => g.mul(ctx.SavedTensors[0]!.mul(0.0).add(2.0)));   // temporaries in Backward too
        Tensor x = torch.ones(3, requires_grad: true);
        for (int round = 0; round < 3; round++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            long liveBefore = Tensor.TotalCount;
            long threadLiveBefore = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            using (DisposeScope outer = NewDisposeScope())
            {
                Tensor y = f.Apply(x);
                Assert.That(outer.Contains(y), Is.True, "the output belongs to the caller's scope");
                Tensor loss = y.sum();
                Assert.That(outer.Contains(loss), Is.True, "the caller's scope is current again after Apply");
                loss.backward();
                Tensor after = torch.zeros(1);
                Assert.That(outer.Contains(after), Is.True, "the caller's scope is current again after backward");
                Assert.That(outer.DisposablesCount, Is.EqualTo(3), "only y, loss and the tensor made after backward");
            }
            Assert.That(Tensor.TotalCount, Is.EqualTo(liveBefore), $"round {round}: live tensor handles");
            Assert.That(DisposeScopeManager.Statistics.ThreadTotalLiveCount, Is.EqualTo(threadLiveBefore),
                        $"round {round}: TorchSharp's live count ({DisposeScopeManager.Statistics})");
        }
        Assert.That(x.grad!.data<float>().ToArray(), Is.EqualTo(new[] { 6f, 6f, 6f }));
    }

    [Test]
    public void DelegateLeavesItsOwnScopeOpen_CallerScopeStillCurrentAfterApply()
    {
        // A Forward that opens a TorchSharp scope and forgets to dispose it: as with nested TorchSharp scopes,
        // leaving the function's scope unlinks it, and the caller's scope is current again.
        DisposeScope? leaked = null;
        UnaryFunction f = AutogradFunction.Create(
            "LeavesScopeOpen",
            (ctx, x) =>
            {
                leaked = NewDisposeScope();
                return x.mul(3.0);
            },
            (ctx, g) => g.mul(3.0));
        Tensor x = torch.ones(2, requires_grad: true);
        using (DisposeScope outer = NewDisposeScope())
        {
            Tensor y = f.Apply(x);
            Tensor z = y.add(1.0);
            Assert.That(outer.Contains(z) || (leaked is not null && leaked.Contains(z)), Is.True);
            y.sum().backward();
        }
        leaked?.Dispose();
        using (DisposeScope next = NewDisposeScope())
        {
            Tensor w = torch.ones(1);
            Assert.That(next.Contains(w), Is.True, "scopes opened after the function work as usual");
        }
        Assert.That(x.grad!.data<float>().ToArray(), Is.EqualTo(new[] { 3f, 3f }));
    }

    [Test]
    public void IncomingGradient_KeptByBackward_IsDisposedWhenBackwardReturns()
    {
        // The gradients and saved tensors a Backward receives are lent for the call (like its context).
        Tensor? kept = null;
        UnaryFunction f = AutogradFunction.Create(
            "KeepsGradient", (ctx, x) => x.mul(2.0), (ctx, g) => { kept = g; return g.mul(2.0); });
        Tensor x = torch.ones(2, requires_grad: true);
        using (NewDisposeScope())
            f.Apply(x).sum().backward();
        Assert.That(kept, Is.Not.Null);
        Assert.That(kept!.IsInvalid, Is.True);
        Assert.That(x.grad!.data<float>().ToArray(), Is.EqualTo(new[] { 2f, 2f }));
    }

    [Test]
    public void StateObject_ReachableOnlyFromContext_CollectableAfterGraphDies()
    {
        WeakReference weak = MakeGraphWithState();
        for (int i = 0; i < 20 && weak.IsAlive; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
        Assert.That(weak.IsAlive, Is.False);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static WeakReference MakeGraphWithState()
    {
        var state = new byte[1024];
        var weak = new WeakReference(state);
        UnaryFunction f = AutogradFunction.Create(
            "HoldsState", (ctx, x) => { ctx.SetState(state); return x * 2; }, (ctx, g) => g * ctx.GetState<byte[]>().Length);
        using (NewDisposeScope())
            _ = f.Apply(torch.ones(2, requires_grad: true));
        return weak;
    }

    [Test]
    public void ClosureObject_CapturedByDelegates_CollectableAfterOutputsDropped()
    {
        WeakReference weak = MakeGraphWithCapture();
        for (int i = 0; i < 20 && weak.IsAlive; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
        Assert.That(weak.IsAlive, Is.False);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static WeakReference MakeGraphWithCapture()
    {
        var captured = new double[] { 3 };
        var weak = new WeakReference(captured);
        UnaryFunction f = AutogradFunction.Create("Captures", (ctx, x) => x * captured[0], (ctx, g) => g * captured[0]);
        // Outputs dropped without Dispose: TorchSharp's finalizers free them, then the node dies.
        _ = f.Apply(torch.ones(2, requires_grad: true));
        return weak;
    }

    [Test]
    [Category("Soak")]
    public void Soak_ManyForwardBackward_CountersReturnToBaselineAndMemoryGrowsNoMoreThanBuiltInOps()
    {
        // Process memory grows over a long loop of built-in TorchSharp ops too (libtorch's and glibc's caches and
        // fragmentation: about 19% over 20,000 steps here), so the custom loop is compared with the same loop of
        // built-in ops in this process, in interleaved blocks so that both see the same allocator state. What is
        // exact (the shim's counters) is checked exactly.
        int iterations = int.TryParse(Environment.GetEnvironmentVariable("CUSTOMAUTOGRAD_SOAK_ITERATIONS"), out int n) ? n : 20_000;
        const int Blocks = 10;
        int perBlock = Math.Max(1, iterations / Blocks);
        Tensor w = torch.randn(32, requires_grad: true);
        void Custom()
        {
            using var scope = NewDisposeScope();
            Tensor loss = TestUtil.Sigmoid.Apply(TestUtil.Relu.Apply(w.mul(Two))).sum();
            loss.backward();
            w.grad!.zero_();
        }
        void BuiltIn()
        {
            using var scope = NewDisposeScope();
            Tensor loss = w.mul(Two).relu().sigmoid().sum();
            loss.backward();
            w.grad!.zero_();
        }

        for (int i = 0; i < 2000; i++)
        {
            Custom();
            BuiltIn();
        }
        CustomAutograd.Native.CaStats before = Settle();
        long customRss = 0, builtInRss = 0, customHeap = 0, builtInHeap = 0;
        var clock = Stopwatch.StartNew();
        for (int block = 0; block < Blocks; block++)
        {
            // Alternating which loop goes first splits one-time growth (code tiering, caches) between the two.
            for (int turn = 0; turn < 2; turn++)
            {
                bool custom = (block + turn) % 2 == 0;
                (long rss, long heap) = Grow(custom ? Custom : BuiltIn, perBlock);
                if (custom)
                {
                    customRss += rss;
                    customHeap += heap;
                }
                else
                {
                    builtInRss += rss;
                    builtInHeap += heap;
                }
            }
        }
        clock.Stop();
        CustomAutograd.Native.CaStats after = Settle();

        const long RssMarginBytes = 16L << 20;   // a leak of a small tensor per step (about 1 KiB) exceeds it
        const long HeapMarginBytes = 256L << 10;
        TestContext.Out.WriteLine(
            $"soak: {Blocks} x {perBlock} steps of each loop in {clock.Elapsed.TotalSeconds:F1} s; nodes {before.LiveNodes}->{after.LiveNodes}, " +
            $"saved {before.LiveSaved}->{after.LiveSaved}, closures {before.LiveClosures}->{after.LiveClosures}; " +
            $"native resident growth custom {customRss / 1024} KiB, built-in {builtInRss / 1024} KiB; managed heap growth custom {customHeap / 1024} KiB, " +
            $"built-in {builtInHeap / 1024} KiB");
        Assert.That(after.LiveNodes, Is.EqualTo(before.LiveNodes));
        Assert.That(after.LiveSaved, Is.EqualTo(before.LiveSaved));
        Assert.That(after.LiveClosures, Is.LessThanOrEqualTo(before.LiveClosures));
        Assert.That(after.NodesCreated - before.NodesCreated, Is.EqualTo(2L * Blocks * perBlock));
        Assert.That(customHeap, Is.LessThanOrEqualTo(Math.Max(builtInHeap, 0) + HeapMarginBytes), "managed heap growth");
        Assert.That(customRss, Is.LessThanOrEqualTo(Math.Max(builtInRss, 0) + RssMarginBytes), "native resident memory growth");
    }

    /// <summary>Runs <paramref name="step"/> and returns the growth of native resident memory and of the managed heap.</summary>
    private static (long Rss, long Heap) Grow(Action step, int steps)
    {
        (long rssBefore, long heapBefore) = Quiesce();
        for (int i = 0; i < steps; i++)
            step();
        (long rssAfter, long heapAfter) = Quiesce();
        return (rssAfter - rssBefore, heapAfter - heapBefore);
    }

    /// <summary>
    /// Frees what is freed lazily (finalizers, the thread's retired gradient handles, glibc's free pages), so that
    /// each block's growth is its own, then reads native resident memory (the resident set less the memory the GC
    /// has committed, which grows by itself as the GC tunes its generation budgets) and the managed heap.
    /// </summary>
    private static (long Rss, long Heap) Quiesce()
    {
        AutogradDiagnostics.FlushThread();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        // The live heap as a compacting full collection left it: what other threads allocate afterwards (the test
        // host, a finalizer) does not count, as it would with GC.GetTotalMemory.
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        long heap = GC.GetGCMemoryInfo(GCKind.FullBlocking).HeapSizeBytes;
        _ = MallocTrim(0);
        return (Process.GetCurrentProcess().WorkingSet64 - GC.GetGCMemoryInfo().TotalCommittedBytes, heap);
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "malloc_trim")]
    private static extern int MallocTrim(nuint pad);

    /// <summary>The shim's own counters (closures included, which the public counters leave out).</summary>
    private static CustomAutograd.Native.CaStats Settle()
    {
        AutogradDiagnostics.FlushThread();
        TestUtil.WaitForLiveNodes(0);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        return CustomAutograd.Native.NativeRuntime.ReadStats();
    }
}
