// SPDX-License-Identifier: MIT
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Runtime.InteropServices;
using CustomAutograd.Native;
using CustomAutograd.TorchSharpInternals;
using NUnit.Framework;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd.Tests;

/// <summary>
/// The guards of the external assumptions listed in docs/architecture.md that the managed side checks: the
/// at::Tensor layout self-check (Note [same tensor]), the TorchSharp version check, LibTorchSharp's exports,
/// libtorch's mangled symbols and LibTorchSharp's GLIBCXX_3.4.32 requirement. Failure paths are driven through
/// internal seams (<see cref="TensorLayoutCheck.Verify"/>, <see cref="TorchSharpVersion.Problem"/>,
/// <see cref="NativeRuntime.Export"/>, <see cref="CustomAutograd.TorchSharpInternals.AdoptedTensors.SetInternalConstructor"/>).
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class GuardTests
{
    [Test]
    public void TensorLayoutCheck_RealTensors_Passes()
    {
        NativeRuntime.EnsureInitialized();
        Assert.DoesNotThrow(TensorLayoutCheck.Run);
    }

    [Test]
    public void TensorLayoutCheck_PassedAtStartUp_OutputConnectedInPlaceKeepsItsTensorObject()
    {
        // The shim drops the fresh handle of an output connected in place only once the check has passed; the
        // caller then gets the very Tensor object its Forward returned.
        Tensor? produced = null;
        UnaryFunction f = AutogradFunction.Create("KeepsObject", (ctx, x) => produced = x * 2, (ctx, g) => g * 2);
        using var scope = NewDisposeScope();
        Tensor x = torch.ones(2, requires_grad: true);
        Tensor y = f.Apply(x);
        Assert.That(ReferenceEquals(y, produced), Is.True);
        y.sum().backward();
        Assert.That(x.grad!.data<float>().ToArray(), Is.EqualTo(new[] { 2f, 2f }));
    }

    [Test]
    public void TensorLayoutCheck_TwoTensorsGivenAsOne_ThrowsWithWhatWasFoundAndTheFix()
    {
        NativeRuntime.EnsureInitialized();
        using var scope = NewDisposeScope();
        Tensor a = torch.zeros(1), b = torch.zeros(1), c = torch.zeros(1);

        var e = Assert.Throws<CustomAutogradException>(() => TensorLayoutCheck.Verify(a.Handle, b.Handle, c.Handle));

        Assert.That(e!.Message, Does.StartWith("CustomAutograd's start-up check of libtorch's tensor layout failed: "));
        Assert.That(e.Message, Does.Contain("two handles to one tensor start with different words (0x"));
        Assert.That(e.Message, Does.Contain("one pointer to its TensorImpl"));
        Assert.That(e.Message, Does.Contain("TorchSharp 0.107 with libtorch 2.10"));
        Assert.That(e.Message, Does.Contain("docs/architecture.md lists what a TorchSharp upgrade requires"));
    }

    [Test]
    public void TensorLayoutCheck_OneTensorGivenAsTheOther_Throws()
    {
        NativeRuntime.EnsureInitialized();
        using var scope = NewDisposeScope();
        Tensor a = torch.zeros(1);
        IntPtr same = TensorLayoutCheck.NewHandleToSameTensor(a.Handle);
        IntPtr sameAgain = TensorLayoutCheck.NewHandleToSameTensor(a.Handle);
        try
        {
            var e = Assert.Throws<CustomAutogradException>(() => TensorLayoutCheck.Verify(a.Handle, same, sameAgain));
            Assert.That(e!.Message, Does.Contain("two different tensors start with the same word"));
            Assert.DoesNotThrow(() => TensorLayoutCheck.Verify(a.Handle, same, torch.zeros(1).Handle));
        }
        finally
        {
            NativeRuntime.DisposeTensorHandle(same);
            NativeRuntime.DisposeTensorHandle(sameAgain);
        }
    }

    [Test]
    public void TensorLayoutCheck_FailedAfterStartUp_LeavesTheVerdict()
    {
        NativeRuntime.EnsureInitialized();
        using var scope = NewDisposeScope();
        Tensor a = torch.zeros(1), b = torch.zeros(1), c = torch.zeros(1);
        Assert.Throws<CustomAutogradException>(() => TensorLayoutCheck.Verify(a.Handle, b.Handle, c.Handle));
        TensorLayoutCheck_PassedAtStartUp_OutputConnectedInPlaceKeepsItsTensorObject();
    }

    [Test]
    public void TensorLayoutCheck_RepeatedHandle_ReportsThatItCouldNotCheck()
    {
        NativeRuntime.EnsureInitialized();
        using var scope = NewDisposeScope();
        Tensor a = torch.zeros(1), b = torch.zeros(1);
        var e = Assert.Throws<CustomAutogradException>(() => TensorLayoutCheck.Verify(a.Handle, a.Handle, b.Handle));
        Assert.That(e!.Message, Does.StartWith("CustomAutograd could not check libtorch's tensor layout: "));
        Assert.That(e.Message, Does.Contain("must be distinct"));
    }

    [TestCase(0, 107, 0)]
    [TestCase(0, 107, 3)]
    public void TorchSharpVersion_0107x_Accepted(int major, int minor, int build)
        => Assert.That(TorchSharpVersion.Problem(new Version(major, minor, build, 0), allowUntested: false), Is.Null);

    [TestCase(0, 108, 0)]
    [TestCase(0, 106, 1)]
    [TestCase(1, 107, 0)]
    public void TorchSharpVersion_Other_RefusedWithWhatAnUpgradeRequires(int major, int minor, int build)
    {
        var version = new Version(major, minor, build, 0);
        string? problem = TorchSharpVersion.Problem(version, allowUntested: false);
        Assert.That(problem, Does.Contain("the loaded TorchSharp is " + version));
        Assert.That(problem, Does.Contain("checked against TorchSharp 0.107.x"));
        Assert.That(problem, Does.Contain("What a TorchSharp upgrade requires"));
        Assert.That(problem, Does.Contain("\"CustomAutograd.AllowUntestedTorchSharp\""));
        Assert.That(TorchSharpVersion.Problem(version, allowUntested: true), Is.Null);
    }

    [Test]
    public void TorchSharpVersion_Unknown_Refused()
        => Assert.That(TorchSharpVersion.Problem(null, allowUntested: false), Does.Contain("of unknown version"));

    [Test]
    public void TorchSharpVersion_TheOneInUse_Accepted()
    {
        Assert.That(typeof(torch).Assembly.GetName().Version, Is.EqualTo(new Version(0, 107, 0, 0)));
        Assert.DoesNotThrow(TorchSharpVersion.Verify);
    }

    [Test]
    public void LibTorchSharpExport_Missing_ThrowsNamingTheExportAndTheVersion()
    {
        NativeRuntime.EnsureInitialized();
        IntPtr library = NativeLibrary.Load(NativeRuntime.LibTorchSharpPath!);
        var e = Assert.Throws<CustomAutogradException>(() => NativeRuntime.Export(library, "THSAutograd_NoSuchExport"));
        Assert.That(e!.Message, Does.Contain("does not export 'THSAutograd_NoSuchExport'").And.Contain("TorchSharp 0.107.0"));
        Assert.That(NativeRuntime.Export(library, "THSAutograd_CSharpNode_ctor"), Is.Not.EqualTo(IntPtr.Zero));
    }

    [Test]
    public void LibTorchMangledSymbols_AllThreeResolved()
    {
        // Missing ones are not fatal (the shim falls back), so a libtorch that renamed them must be caught here.
        NativeRuntime.EnsureInitialized();
        Assert.That(NativeRuntime.KeepGraphSource, Is.Not.Null, "torch::autograd::get_current_graph_task_keep_graph");
        Assert.That(NativeRuntime.EngineCallbackFound, Is.True, "Engine::get_default_engine and Engine::queue_callback");
    }

    [Test]
    public void LibTorchCachedTensorRegistry_AllThreeSymbolsResolved()
    {
        // Also optional: without them a Backward's gradient for a leaf is copied instead of taken over, which only
        // GradientBufferTests would notice. A libtorch that renamed or dropped at::caching must be caught here.
        NativeRuntime.EnsureInitialized();
        Assert.That(NativeRuntime.CachedTensorRegistryFound, Is.True,
            "at::caching::set_cached_tensors_enabled, add_cached_tensor and remove_cached_tensor");
    }

    [Test]
    public void LibTorchCheckpointValidity_Resolved()
    {
        // Optional as well: without it a function-form checkpoint would not refuse Autograd.Grad and would write into
        // the .grad of the tensors it captured. Outside any backward libtorch reports a valid checkpoint.
        NativeRuntime.EnsureInitialized();
        Assert.That(NativeRuntime.CheckpointValidityFound, Is.True, "torch::autograd::Engine::is_checkpoint_valid");
        Assert.That(NativeRuntime.IsCheckpointValid(), Is.True);
    }

    [Test]
    public void Library_NeverHandsTorchSharpATemporaryScalar()
    {
        // Note [kept scalars]: a Scalar that TorchSharp makes from a number can be finalized during the native call
        // that reads it. Every method the library calls into TorchSharp is followed through TorchSharp's own IL (three
        // calls deep, far enough for `a + b` -> add(Tensor) -> add(Tensor, Scalar) with an implicit 1); only the
        // Scalars of KeptScalars may reach it.
        Assembly torchSharp = typeof(Scalar).Assembly;
        MethodBase[] callers = IlCalls.DeclaredMethods(typeof(AutogradFunction).Assembly)
            .Where(m => m.DeclaringType != typeof(KeptScalars)).ToArray();
        int calls = callers.Sum(m => IlCalls.Callees(m).Count(c => c.Module.Assembly == torchSharp));
        List<string> found = callers.SelectMany(IlCalls.TemporaryScalarCalls).ToList();
        Assert.That(calls, Is.GreaterThan(50), "the IL reader found the library's calls into TorchSharp");
        Assert.That(found, Is.Empty, string.Join(Environment.NewLine, found));
        Assert.That(IlCalls.TemporaryScalar(typeof(Tensor).GetMethod("op_Addition", new[] { typeof(Tensor), typeof(Tensor) })!),
                    Is.Not.Null, "the hidden alpha of a + b is detected");
    }

    [Test]
    public void TestsInLoops_NeverHandTorchSharpATemporaryScalar()
    {
        // The test code that runs thousands of times or on several threads (shared functions, long chains, the
        // soak, the thread tests, the tutorial's loop) keeps its Scalars too: one temporary in a 100,000-node chain
        // made CI fail once.
        Type[] whole = { typeof(TestUtil), typeof(TestFunctions), typeof(TeardownTests), typeof(CustomAutograd.Examples.Tutorial) };
        Type[] partly = { typeof(ReliabilityTests), typeof(CudaTests) };
        static Type Outermost(Type t) => t.DeclaringType is { } d ? Outermost(d) : t;
        MethodBase[] scanned = IlCalls.DeclaredMethods(typeof(TestUtil).Assembly)
            .Concat(IlCalls.DeclaredMethods(typeof(CustomAutograd.Examples.Tutorial).Assembly))
            .Where(m => !(m is ConstructorInfo { IsStatic: true }))   // static fields made once are the kept Scalars
            .Where(m =>
            {
                Type owner = Outermost(m.DeclaringType!);
                bool inLoop = m.Name.Contains("Thread", StringComparison.Ordinal) || m.Name.Contains("Soak", StringComparison.Ordinal);
                return whole.Contains(owner) || (partly.Contains(owner) && inLoop);
            })
            .ToArray();
        List<string> found = scanned.SelectMany(IlCalls.TemporaryScalarCalls).ToList();
        Assert.That(scanned, Has.Length.GreaterThan(20));
        Assert.That(found, Is.Empty, string.Join(Environment.NewLine, found));
    }

    [Test]
    public void LibTorchSharp_OnlySymbolNeedingGlibcxx3432_IsTheUncalledIosBaseMarker()
    {
        // build/LibStdCxxCompat.targets marks the GLIBCXX_3.4.32 requirement weak; that is safe only while the one
        // symbol bound to that version is std::ios_base_library_init(), a link-time marker never called.
        NativeRuntime.EnsureInitialized();
        string library = NativeRuntime.LibTorchSharpPath!;
        string? objdump = Environment.GetEnvironmentVariable("PATH")?.Split(':')
            .Select(dir => Path.Combine(dir, "objdump")).FirstOrDefault(File.Exists);
        if (objdump is null)
            Assert.Ignore("objdump (binutils, installed with g++) is not on PATH.");
        var info = new ProcessStartInfo(objdump!, new[] { "-T", library }) { RedirectStandardOutput = true };
        using Process process = Process.Start(info)!;
        string[] lines = process.StandardOutput.ReadToEnd().Split('\n');
        process.WaitForExit();
        Assert.That(process.ExitCode, Is.Zero);
        string[] bound = lines.Where(l => l.Contains("(GLIBCXX_3.4.32)", StringComparison.Ordinal))
                              .Select(l => l.Trim().Split(' ', '\t').Last()).ToArray();
        Assert.That(bound, Is.EqualTo(new[] { "_ZSt21ios_base_library_initv" }));
    }

    [Test]
    public void AdoptedTensorsFallback_WithoutTorchSharpsInternalConstructor_SameGradientsAndNoLeaks()
    {
        // The UnsafeAccessor of AdoptedTensors has a public fallback (Tensor.UnsafeCreateTensor, then
        // DetachFromDisposeScope); DelegateScope's is tested by ReliabilityTests.PublicScopeFallback_*.
        UnaryFunction square = AutogradFunction.Create(
            "SquareFallback",
            (ctx, x) =>
            {
                ctx.SaveForBackward(x);
                return x * x;
            },
            (ctx, g) => g * 2 * ctx.SavedTensors[0]!);
        CustomAutograd.TorchSharpInternals.AdoptedTensors.SetInternalConstructor(false);
        try
        {
            Tensor x = torch.tensor(new[] { 1.0, -3.0 }, requires_grad: true);
            GC.Collect();
            GC.WaitForPendingFinalizers();
            long liveBefore = Tensor.TotalCount;
            using (NewDisposeScope())
                square.Apply(x).sum().backward();
            Assert.That(Tensor.TotalCount, Is.EqualTo(liveBefore), "live tensor handles");
            Assert.That(CustomAutograd.TorchSharpInternals.AdoptedTensors.UsesInternalConstructor, Is.False);
            Assert.That(x.grad!.data<double>().ToArray(), Is.EqualTo(new[] { 2.0, -6.0 }));
        }
        finally
        {
            CustomAutograd.TorchSharpInternals.AdoptedTensors.SetInternalConstructor(true);
        }
    }
}
