// SPDX-License-Identifier: MIT
using System;
using System.Threading;
using CustomAutograd.TorchSharpInternals;
using NUnit.Framework;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd.Tests;

/// <summary>
/// The same guarantees on CUDA tensors, where libtorch runs Backward on its own per-device engine thread.
/// Every test skips itself when TorchSharp reports no CUDA device (as on CI); run them on a GPU machine
/// (see ../shared/gpu/README.md in the project's workspace, or any machine with a CUDA libtorch).
/// </summary>
[TestFixture]
[Category("CUDA")]
[NonParallelizable]
public sealed class CudaTests
{
    private static readonly Scalar Zero = KeptScalars.Zero;   // Note [kept scalars]

    private static readonly UnaryFunction Relu = AutogradFunction.Create(
        "CudaReLU",
        (ctx, x) =>
        {
            ctx.SaveForBackward(x);
            return x.clamp_min(Zero);
        },
        (ctx, g) => g.masked_fill(ctx.SavedTensors[0]!.lt(Zero), Zero));

    [SetUp]
    public void RequireCuda()
    {
        if (!torch.cuda.is_available())
            Assert.Ignore("no CUDA device: TorchSharp reports torch.cuda.is_available() == false");
    }

    [Test]
    public void Relu_OnCuda_GradientEqualsBuiltInAndStaysOnDevice()
    {
        using var scope = NewDisposeScope();
        Tensor x = torch.randn(1000, device: CUDA, requires_grad: true);
        Tensor x2 = x.detach().clone().requires_grad_(true);
        Relu.Apply(x).pow(2).sum().backward();
        torch.nn.functional.relu(x2).pow(2).sum().backward();
        Assert.That(x.grad!.device_type, Is.EqualTo(DeviceType.CUDA));
        TestUtil.AssertClose(x.grad!.cpu(), x2.grad!.cpu());
    }

    [Test]
    public void MissingGradient_OnCuda_MaterialisedOnTheOutputsDevice()
    {
        using var scope = NewDisposeScope();
        DeviceType? seen = null;
        MultiFunction f = AutogradFunction.CreateMulti(
            "CudaTwoOutputs",
            (ctx, xs) => new[] { xs[0]! * 2, xs[0]! * 3 },
            (ctx, gs) =>
            {
                seen = gs[1]!.device_type;
                return new[] { gs[0]! * 2 + gs[1]! * 3 };
            });
        Tensor x = torch.ones(4, device: CUDA, requires_grad: true);
        f.Apply(x)[0].sum().backward();
        Assert.That(seen, Is.EqualTo(DeviceType.CUDA));
        TestUtil.AssertClose(x.grad!.cpu(), torch.full(4, 2f));
    }

    [Test]
    public void Backward_ThrowsOnEngineThread_SurfacesAndNextCallWorks()
    {
        using var scope = NewDisposeScope();
        int? backwardThread = null;
        UnaryFunction throwing = AutogradFunction.Create(
            "CudaThrows",
            (ctx, x) => x.mul(KeptScalars.Two),
            (ctx, g) =>
            {
                backwardThread = Environment.CurrentManagedThreadId;
                throw new InvalidOperationException("cuda-boom");
            });
        Tensor x = torch.ones(8, device: CUDA, requires_grad: true);
        for (int i = 0; i < 20; i++)
        {
            Exception? e = Assert.Catch(() => throwing.Apply(x).sum().backward());
            Assert.That(e!.Message, Does.Contain("CudaThrows").And.Contain("cuda-boom"));
        }
        TestContext.Out.WriteLine($"Backward ran on managed thread {backwardThread}, test thread {Environment.CurrentManagedThreadId}");
        Relu.Apply(x).sum().backward();
        TestUtil.AssertClose(x.grad!.cpu(), torch.ones(8));
    }

    [Test]
    public void Backward_GradientOnWrongDevice_ErrorNamesBothDevices()
    {
        using var scope = NewDisposeScope();
        UnaryFunction wrongDevice = AutogradFunction.Create("WrongDevice", (ctx, x) => x * 2, (ctx, g) => g.cpu() * 2);
        Exception? e = Assert.Catch(() => wrongDevice.Apply(torch.ones(3, device: CUDA, requires_grad: true)).sum().backward());
        Assert.That(e!.Message, Does.Contain("WrongDevice").And.Contain("input 0").And.Contain("cpu").And.Contain("cuda:0"));
    }

    [Test]
    public void Threads_IndependentCudaGraphs_AllGradientsCorrect()
    {
        int wrong = 0;
        var workers = new Thread[4];
        for (int t = 0; t < workers.Length; t++)
        {
            workers[t] = new Thread(() =>
            {
                for (int i = 0; i < 200; i++)
                {
                    using var scope = NewDisposeScope();
                    Tensor x = torch.tensor(new[] { 1f, -1f }, device: CUDA, requires_grad: true);
                    Relu.Apply(x).sum().backward();
                    Tensor g = x.grad!.cpu();
                    if (g[0].item<float>() != 1f || g[1].item<float>() != 0f)
                        Interlocked.Increment(ref wrong);
                }
            });
            workers[t].Start();
        }
        foreach (Thread w in workers)
            Assert.That(w.Join(TimeSpan.FromMinutes(2)), Is.True);
        Assert.That(wrong, Is.Zero);
    }

    [Test]
    public void Soak_OnCuda_NodesReturnToBaseline()
    {
        long baseline = TestUtil.WaitForLiveNodes(AutogradDiagnostics.ReadCounters().LiveNodes);
        Tensor w = torch.randn(1 << 16, device: CUDA, requires_grad: true);
        for (int i = 0; i < 2000; i++)
        {
            using var scope = NewDisposeScope();
            Relu.Apply(w).sum().backward();
            w.grad!.zero_();
        }
        Assert.That(TestUtil.WaitForLiveNodes(baseline), Is.EqualTo(baseline));
    }
}
