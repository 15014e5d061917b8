// SPDX-License-Identifier: MIT
using System.Collections.Generic;
using System.Linq;
using NUnit.Framework;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace CustomAutograd.Tests;

/// <summary>
/// Activation checkpointing on CUDA: the same gradients as without it, and random CUDA operations replayed in the
/// recompute through the reseeding described in Note [checkpoint RNG]. Every test skips itself without a device.
/// </summary>
[TestFixture]
[Category("CUDA")]
[NonParallelizable]
public sealed class CheckpointCudaTests
{
    private const double Rtol = 1e-10, Atol = 1e-12;

    [SetUp]
    public void RequireCuda()
    {
        if (!torch.cuda.is_available())
            Assert.Ignore("no CUDA device: TorchSharp reports torch.cuda.is_available() == false");
    }

    [Test]
    public void Run_ModuleMlpOnCuda_GradientsEqualUncheckpointedAndStayOnDevice()
    {
        using var scope = NewDisposeScope();
        using Sequential mlp = CheckpointTests.Mlp(CUDA);
        Tensor x = torch.randn(new long[] { 5, 8 }, dtype: ScalarType.Float64, device: CUDA, requires_grad: true);
        CheckpointTests.StepResult expected = CheckpointTests.Step(mlp, t => mlp.call(t), x);
        CheckpointTests.StepResult actual = CheckpointTests.Step(mlp, t => Checkpoint.Run(mlp, t), x);
        Assert.That(actual.InputGrad!.device_type, Is.EqualTo(DeviceType.CUDA));
        CheckpointTests.AssertSameStep(actual, expected);
    }

    [Test]
    public void Sequential_ConvNetWithBatchNormOnCuda_GradientsEqualUncheckpointed()
    {
        using var scope = NewDisposeScope();
        torch.manual_seed(11);
        using Sequential plain = CheckpointTests.ConvNet(CUDA);
        torch.manual_seed(11);
        using Sequential checkpointed = CheckpointTests.ConvNet(CUDA);
        Tensor x = torch.randn(new long[] { 8, 3, 6, 6 }, dtype: ScalarType.Float64, device: CUDA, requires_grad: true);
        CheckpointTests.AssertSameStep(CheckpointTests.Step(checkpointed, t => Checkpoint.Sequential(checkpointed, 2, t), x),
                                       CheckpointTests.Step(plain, t => plain.call(t), x));
    }

    [Test]
    public void Run_DropoutOnCuda_RecomputeSeesTheForwardsMaskAndLaterNumbersDoNotRepeat()
    {
        using var scope = NewDisposeScope();
        var masks = new List<double[]>();
        Tensor x = torch.randn(new long[] { 256 }, dtype: ScalarType.Float64, device: CUDA, requires_grad: true);
        Tensor y = Checkpoint.Run(t =>
        {
            Tensor mask = nn.functional.dropout(torch.ones_like(t), 0.5, true);
            masks.Add(mask.cpu().data<double>().ToArray());
            return t.tanh() * mask;
        }, x);
        Tensor afterForward = torch.rand(64, device: CUDA).cpu();
        y.pow(2).sum().backward();
        Tensor afterBackward = torch.rand(64, device: CUDA).cpu();

        Assert.That(masks, Has.Count.EqualTo(2));
        Assert.That(masks[1], Is.EqualTo(masks[0]), "the recompute's dropout mask");
        Assert.That(masks[0], Does.Contain(0.0).And.Contain(2.0));
        Tensor mask0 = torch.tensor(masks[0], dtype: ScalarType.Float64, device: CUDA);
        Tensor t0 = x.detach().tanh();
        TestUtil.AssertClose(x.grad!.cpu(), (2 * t0 * mask0 * mask0 * (1 - t0.pow(2))).cpu(), Rtol, Atol);
        // The recompute leaves the CUDA generators where the forward's segment left them; they are reseeded after it,
        // so the numbers drawn after the backward are not the ones drawn after the forward again.
        Assert.That(afterBackward.equal(afterForward), Is.False);
    }

    [Test]
    public void Run_DropoutOnCuda_SameCpuSeedGivesTheSameMasks()
    {
        using var scope = NewDisposeScope();
        Tensor x = torch.randn(new long[] { 256 }, dtype: ScalarType.Float64, device: CUDA, requires_grad: true);
        double[] MaskAfterSeed(long seed)
        {
            torch.manual_seed(seed);
            double[]? mask = null;
            Checkpoint.Run(t =>
            {
                Tensor m = nn.functional.dropout(torch.ones_like(t), 0.5, true);
                mask ??= m.cpu().data<double>().ToArray();
                return t * m;
            }, x).sum().backward();
            return mask!;
        }
        Assert.That(MaskAfterSeed(3), Is.EqualTo(MaskAfterSeed(3)));
        Assert.That(MaskAfterSeed(3), Is.Not.EqualTo(MaskAfterSeed(4)));
    }

    [Test]
    public void Grad_WithRespectToParametersOnCuda_EqualsUncheckpointed()
    {
        using var scope = NewDisposeScope();
        using Sequential mlp = CheckpointTests.Mlp(CUDA);
        Tensor x = torch.randn(new long[] { 5, 8 }, dtype: ScalarType.Float64, device: CUDA, requires_grad: true);
        Tensor[] wrt = new[] { x }.Concat(mlp.parameters()).ToArray();
        Tensor?[] expected = Autograd.Grad(new[] { CheckpointTests.Loss(mlp.call(x)) }, wrt);
        Tensor?[] actual = Autograd.Grad(new[] { CheckpointTests.Loss(Checkpoint.Run(mlp, x)) }, wrt);
        for (int i = 0; i < wrt.Length; i++)
            TestUtil.AssertClose(actual[i]!.cpu(), expected[i]!.cpu(), Rtol, Atol);
    }
}
