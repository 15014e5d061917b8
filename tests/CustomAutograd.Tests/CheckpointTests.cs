// SPDX-License-Identifier: MIT
using System;
using System.Collections.Generic;
using System.Linq;
using NUnit.Framework;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace CustomAutograd.Tests;

/// <summary>
/// Activation checkpointing (<see cref="Checkpoint"/>, <see cref="CheckpointModule"/>): gradients of the input
/// and of every parameter equal those of the same model without checkpointing (float64), plus the semantics of
/// PyTorch's re-entrant checkpoint (RNG, no_grad, nesting, failures) and what it adds (Autograd.Grad with respect
/// to parameters, double backward).
/// </summary>
[TestFixture]
[NonParallelizable]   // the tests seed and read the process-wide default generator
public sealed class CheckpointTests
{
    private const double Rtol = 1e-10, Atol = 1e-12;

    // ---------------------------------------------------------------- models

    internal static Sequential Mlp(Device? device = null) => nn.Sequential(
        nn.Linear(8, 16, dtype: ScalarType.Float64, device: device), nn.Tanh(),
        nn.Linear(16, 16, dtype: ScalarType.Float64, device: device), nn.GELU(),
        nn.Linear(16, 16, dtype: ScalarType.Float64, device: device), nn.Tanh(),
        nn.Linear(16, 4, dtype: ScalarType.Float64, device: device));

    internal static Sequential ConvNet(Device? device = null) => nn.Sequential(
        nn.Conv2d(3, 4, 3, padding: 1, dtype: ScalarType.Float64, device: device),
        nn.BatchNorm2d(4, dtype: ScalarType.Float64, device: device),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding: 1, dtype: ScalarType.Float64, device: device),
        nn.BatchNorm2d(4, dtype: ScalarType.Float64, device: device),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 6 * 6, 5, dtype: ScalarType.Float64, device: device));

    /// <summary>Pre-norm transformer block (one head) with dropout on the attention weights and both residual branches.</summary>
    internal sealed class TransformerBlock : nn.Module<Tensor, Tensor>
    {
        private readonly LayerNorm ln1, ln2;
        private readonly Linear qkv, proj, fc1, fc2;
        private readonly double _p;

        internal TransformerBlock(int width, double dropout, Device? device = null) : base(nameof(TransformerBlock))
        {
            ln1 = nn.LayerNorm(width, dtype: ScalarType.Float64, device: device);
            ln2 = nn.LayerNorm(width, dtype: ScalarType.Float64, device: device);
            qkv = nn.Linear(width, 3 * width, dtype: ScalarType.Float64, device: device);
            proj = nn.Linear(width, width, dtype: ScalarType.Float64, device: device);
            fc1 = nn.Linear(width, 2 * width, dtype: ScalarType.Float64, device: device);
            fc2 = nn.Linear(2 * width, width, dtype: ScalarType.Float64, device: device);
            _p = dropout;
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            Tensor[] qkvs = qkv.call(ln1.call(x)).chunk(3, -1);
            Tensor scores = qkvs[0].matmul(qkvs[1].transpose(-2, -1)) / Math.Sqrt(x.shape[^1]);
            Tensor attention = nn.functional.dropout(nn.functional.softmax(scores, -1), _p, training);
            x = x + nn.functional.dropout(proj.call(attention.matmul(qkvs[2])), _p, training);
            return x + nn.functional.dropout(fc2.call(nn.functional.gelu(fc1.call(ln2.call(x)))), _p, training);
        }
    }

    internal static Sequential Transformer(Device? device = null) =>
        nn.Sequential(new TransformerBlock(8, 0.25, device), new TransformerBlock(8, 0.25, device));

    // ---------------------------------------------------------------- one step, compared

    internal sealed record StepResult(Tensor Output, Tensor? InputGrad, (string Name, Tensor? Grad)[] ParameterGrads);

    /// <summary>Forward, a nonlinear loss, backward; returns copies of the output and of every gradient.</summary>
    internal static StepResult Step(nn.Module model, Func<Tensor, Tensor> forward, Tensor input, long? seed = null)
    {
        model.zero_grad(true);
        if (seed is { } s)
            torch.manual_seed(s);
        Tensor x = input.detach().clone().requires_grad_(input.requires_grad);
        Tensor y = forward(x);
        Loss(y).backward();
        return new StepResult(
            y.detach().clone(),
            x.grad?.clone(),
            model.named_parameters().Select(p => (p.name, p.parameter.grad?.clone())).ToArray());
    }

    internal static Tensor Loss(Tensor y) => y.pow(2).sum() * 0.5 + (y * y.detach().cos()).sum();

    internal static void AssertSameStep(StepResult actual, StepResult expected)
    {
        TestUtil.AssertClose(actual.Output, expected.Output, Rtol, Atol);
        if (expected.InputGrad is null)
            Assert.That(actual.InputGrad, Is.Null, "input gradient");
        else
            TestUtil.AssertClose(actual.InputGrad!, expected.InputGrad, Rtol, Atol);
        Assert.That(actual.ParameterGrads.Select(p => p.Name), Is.EqualTo(expected.ParameterGrads.Select(p => p.Name)));
        for (int i = 0; i < expected.ParameterGrads.Length; i++)
        {
            Assert.That(expected.ParameterGrads[i].Grad, Is.Not.Null, $"{expected.ParameterGrads[i].Name} has no reference gradient");
            Assert.That(actual.ParameterGrads[i].Grad, Is.Not.Null, $"{actual.ParameterGrads[i].Name} got no gradient");
            TestUtil.AssertClose(actual.ParameterGrads[i].Grad!, expected.ParameterGrads[i].Grad!, Rtol, Atol);
        }
    }

    private static Tensor Input(params long[] shape) =>
        torch.randn(shape, dtype: ScalarType.Float64, requires_grad: true);

    // ---------------------------------------------------------------- MLP, every form

    [Test]
    public void Run_ModuleMlp_GradientsOfInputAndEveryParameterEqualUncheckpointed()
    {
        using var scope = NewDisposeScope();
        using Sequential mlp = Mlp();
        Tensor x = Input(5, 8);
        StepResult expected = Step(mlp, t => mlp.call(t), x);
        AssertSameStep(Step(mlp, t => Checkpoint.Run(mlp, t), x), expected);
    }

    [Test]
    public void Run_FunctionCapturingParameters_GradientsAccumulateIntoCapturedLeaves()
    {
        using var scope = NewDisposeScope();
        using Sequential mlp = Mlp();
        Tensor x = Input(5, 8);
        StepResult expected = Step(mlp, t => mlp.call(t), x);
        AssertSameStep(Step(mlp, t => Checkpoint.Run(h => mlp.call(h), t), x), expected);
    }

    [Test]
    public void Run_FunctionWithDeclaredParameters_GradientsEqualUncheckpointed()
    {
        using var scope = NewDisposeScope();
        using Sequential mlp = Mlp();
        Tensor x = Input(5, 8);
        var options = new CheckpointOptions { Parameters = mlp.parameters().ToArray() };
        StepResult expected = Step(mlp, t => mlp.call(t), x);
        AssertSameStep(Step(mlp, t => Checkpoint.Run(h => mlp.call(h), t, options), x), expected);
    }

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(3)]
    [TestCase(7)]
    public void Sequential_MlpInSegments_GradientsEqualUncheckpointed(int segments)
    {
        using var scope = NewDisposeScope();
        using Sequential mlp = Mlp();
        Tensor x = Input(5, 8);
        StepResult expected = Step(mlp, t => mlp.call(t), x);
        AssertSameStep(Step(mlp, t => Checkpoint.Sequential(mlp, segments, t), x), expected);
    }

    [Test]
    public void Sequential_ListOfModules_RunsInOrderAndSplitsAsPyTorch()
    {
        using var scope = NewDisposeScope();
        using Sequential mlp = Mlp();
        var calls = new List<int>();
        var modules = Enumerable.Range(0, mlp.Count)
            .Select(i => (nn.IModule<Tensor, Tensor>)new Recording(mlp[i], i, calls)).ToList();
        Tensor x = Input(5, 8);
        StepResult expected = Step(mlp, t => mlp.call(t), x);
        calls.Clear();
        AssertSameStep(Step(mlp, t => Checkpoint.Sequential(modules, 3, t), x), expected);
        // 7 modules in 3 segments: chunks of 7 / 3 = 2 modules, the last chunk has the remaining 3. The forward runs
        // 0..6 once; the backward recomputes the second checkpointed chunk (2, 3), then the first (0, 1).
        Assert.That(calls, Is.EqualTo(new[] { 0, 1, 2, 3, 4, 5, 6, 2, 3, 0, 1 }));
    }

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(3)]
    public void Sequential_ModulesReturningTheirInput_IntermediatesDisposedButNothingTheNextModuleUses(int segments)
    {
        using var scope = NewDisposeScope();
        using Linear linear = nn.Linear(8, 8, dtype: ScalarType.Float64);
        var identity = new FunctionModule(t => t);
        var modules = new List<nn.IModule<Tensor, Tensor>> { identity, linear, identity, new FunctionModule(t => t.tanh()), identity, identity };
        Tensor x = Input(5, 8);
        StepResult expected = Step(linear, t => modules.Aggregate(t, (h, m) => m.call(h)), x);
        AssertSameStep(Step(linear, t => Checkpoint.Sequential(modules, segments, t), x), expected);
    }

    private sealed class Recording : nn.Module<Tensor, Tensor>
    {
        private readonly nn.IModule<Tensor, Tensor> _inner;
        private readonly int _index;
        private readonly List<int> _calls;

        internal Recording(nn.IModule<Tensor, Tensor> inner, int index, List<int> calls) : base(nameof(Recording))
        {
            _inner = inner;
            _index = index;
            _calls = calls;
            register_module("inner", (nn.Module)inner);
        }

        public override Tensor forward(Tensor x)
        {
            _calls.Add(_index);
            return _inner.call(x);
        }
    }

    [Test]
    public void CheckpointModule_EveryLayerWrappedInsideSequential_GradientsEqualUncheckpointed()
    {
        using var scope = NewDisposeScope();
        AssertWrappedEqualsPlain(() => Mlp(), Input(5, 8), seed: null);
    }

    /// <summary>
    /// Builds the model twice from the same seed, wraps every item of the second in a <see cref="CheckpointModule"/>
    /// inside a new Sequential, and compares one step of each (dropout seeded with <paramref name="seed"/>).
    /// </summary>
    private static void AssertWrappedEqualsPlain(Func<Sequential> build, Tensor x, long? seed)
    {
        torch.manual_seed(3);
        using Sequential plain = build();
        torch.manual_seed(3);
        using Sequential inner = build();
        using Sequential wrapped = nn.Sequential(Enumerable.Range(0, inner.Count)
            .Select(i => new CheckpointModule((nn.Module<Tensor, Tensor>)inner[i])));
        StepResult expected = Step(plain, t => plain.call(t), x, seed);
        StepResult actual = Step(wrapped, t => wrapped.call(t), x, seed);
        // The wrapper registers the wrapped module as "module": same parameters, one more name level.
        Assert.That(actual.ParameterGrads.Select(p => p.Name), Has.All.Contains(".module."));
        AssertSameStep(actual with { ParameterGrads = actual.ParameterGrads.Select(p => (p.Name.Replace(".module.", "."), p.Grad)).ToArray() },
                       expected);
    }

    [Test]
    public void Run_ArgsForm_TypedArgumentReachesForwardAndRecompute()
    {
        using var scope = NewDisposeScope();
        using Sequential mlp = Mlp();
        Tensor x = Input(5, 8);
        var seen = new List<double>();
        StepResult expected = Step(mlp, t => mlp.call(t * 0.5), x);
        StepResult actual = Step(mlp, t => Checkpoint.Run((h, s) =>
        {
            seen.Add(s);
            return mlp.call(h * s);
        }, t, 0.5, new CheckpointOptions { Parameters = mlp.parameters().ToArray() }), x);
        AssertSameStep(actual, expected);
        Assert.That(seen, Is.EqualTo(new[] { 0.5, 0.5 }));
    }

    [Test]
    public void Run_TensorPassedAsTypedArgs_Refused()
    {
        using var scope = NewDisposeScope();
        Tensor x = Input(3);
        Assert.That(() => Checkpoint.Run((h, other) => h * other, x, Input(3)),
                    Throws.ArgumentException.With.Message.Contains("pass tensors as inputs"));
        Assert.That(() => Checkpoint.Run((h, a) => h * a.Item2 * a.Item1, x, (2.0, Input(3))),
                    Throws.ArgumentException.With.Message.Contains("pass tensors as inputs"));
        Assert.That(() => Checkpoint.Run((h, ws) => h * ws[0], x, new[] { Input(3) }),
                    Throws.ArgumentException.With.Message.Contains("pass tensors as inputs"));
        Assert.That(() => Checkpoint.Run((h, ws) => h * ws[0], x, new List<Tensor> { Input(3) }),
                    Throws.ArgumentException.With.Message.Contains("pass tensors as inputs"));
    }

    // ---------------------------------------------------------------- conv net with batch norm

    [Test]
    public void Sequential_ConvNetWithBatchNorm_GradientsEqualAndCheckpointedRunningStatsUpdatedTwice()
    {
        using var scope = NewDisposeScope();
        torch.manual_seed(11);
        using Sequential plain = ConvNet();
        torch.manual_seed(11);
        using Sequential checkpointed = ConvNet();
        Tensor x = Input(8, 3, 6, 6);

        StepResult expected = Step(plain, t => plain.call(t), x);
        // 8 modules in 2 segments: conv, bn1, relu, conv checkpointed; bn2, relu, flatten, linear run normally.
        StepResult actual = Step(checkpointed, t => Checkpoint.Sequential(checkpointed, 2, t), x);
        AssertSameStep(actual, expected);

        // Training-mode batch norm normalises with the batch's statistics, so the gradients are exact; its running
        // statistics are updated by the forward and again by the recompute (as in PyTorch). The reference for two
        // updates: one more forward of the plain model on the same input.
        var bn1 = (BatchNorm2d)checkpointed[1];
        var bn2 = (BatchNorm2d)checkpointed[4];
        Tensor plainBn2Mean = ((BatchNorm2d)plain[4]).running_mean!.clone();
        using (no_grad())
            plain.call(x);
        TestUtil.AssertClose(bn1.running_mean!, ((BatchNorm2d)plain[1]).running_mean!, Rtol, Atol);
        TestUtil.AssertClose(bn1.running_var!, ((BatchNorm2d)plain[1]).running_var!, Rtol, Atol);
        Assert.That(bn1.num_batches_tracked!.ToDouble(), Is.EqualTo(2));
        TestUtil.AssertClose(bn2.running_mean!, plainBn2Mean, Rtol, Atol);
        Assert.That(bn2.num_batches_tracked!.ToDouble(), Is.EqualTo(1));
    }

    [Test]
    public void Run_ConvNetInEvalMode_GradientsEqualAndRunningStatsUntouched()
    {
        using var scope = NewDisposeScope();
        using Sequential net = ConvNet();
        net.eval();
        Tensor x = Input(4, 3, 6, 6);
        Tensor mean = ((BatchNorm2d)net[1]).running_mean!.clone();
        StepResult expected = Step(net, t => net.call(t), x);
        AssertSameStep(Step(net, t => Checkpoint.Run(net, t), x), expected);
        TestUtil.AssertClose(((BatchNorm2d)net[1]).running_mean!, mean, 0, 0);
    }

    // ---------------------------------------------------------------- dropout and RNG

    [Test]
    public void CheckpointModule_TransformerWithDropoutAndSeed_GradientsEqualUncheckpointed()
    {
        using var scope = NewDisposeScope();
        AssertWrappedEqualsPlain(() => Transformer(), Input(2, 6, 8), seed: 123);
    }

    [Test]
    public void Run_TransformerWithDropout_RngNotPreserved_GradientsDiffer()
    {
        // The same comparison as above fails when the RNG state is not preserved: the test can tell.
        using var scope = NewDisposeScope();
        using Sequential model = Transformer();
        Tensor x = Input(2, 6, 8);
        var noRng = new CheckpointOptions { PreserveRngState = false };
        StepResult expected = Step(model, t => model.call(t), x, seed: 123);
        StepResult actual = Step(model, t => Checkpoint.Run(model, t, noRng), x, seed: 123);
        TestUtil.AssertClose(actual.Output, expected.Output, Rtol, Atol);   // the forward itself is unchanged
        Assert.That(actual.InputGrad!.allclose(expected.InputGrad!, Rtol, Atol), Is.False);
    }

    [Test]
    public void Run_Dropout_RecomputeSeesTheForwardsMaskAndRngStreamContinuesAsWithout()
    {
        using var scope = NewDisposeScope();
        var masks = new List<double[]>();
        Tensor x = Input(64);
        Func<Tensor, Tensor> segment = t =>
        {
            Tensor mask = nn.functional.dropout(torch.ones_like(t), 0.5, true);
            masks.Add(mask.data<double>().ToArray());
            return t.tanh() * mask;
        };

        torch.manual_seed(77);
        Tensor y = Checkpoint.Run(segment, x);
        Tensor drawnBetween = torch.rand(8, dtype: ScalarType.Float64);   // random numbers between forward and backward
        y.pow(2).sum().backward();
        Tensor after = torch.rand(8, dtype: ScalarType.Float64);

        Assert.That(masks, Has.Count.EqualTo(2));
        Assert.That(masks[1], Is.EqualTo(masks[0]), "the recompute's dropout mask");
        Assert.That(masks[0], Does.Contain(0.0).And.Contain(2.0));
        Tensor mask0 = torch.tensor(masks[0], dtype: ScalarType.Float64);
        Tensor expectedGrad = 2 * x.detach().tanh() * mask0 * mask0 * (1 - x.detach().tanh().pow(2));
        TestUtil.AssertClose(x.grad!, expectedGrad, Rtol, Atol);

        // Without checkpointing, the same seed gives the same numbers before and after the backward.
        torch.manual_seed(77);
        nn.functional.dropout(torch.ones(64, dtype: ScalarType.Float64), 0.5, true);
        TestUtil.AssertClose(drawnBetween, torch.rand(8, dtype: ScalarType.Float64), 0, 0);
        TestUtil.AssertClose(after, torch.rand(8, dtype: ScalarType.Float64), 0, 0);
    }

    [Test]
    public void Run_ExplicitGenerator_ListedInOptionsIsReplayedOtherwiseNot()
    {
        using var scope = NewDisposeScope();
        Tensor x = Input(32);
        StepResult Run(CheckpointOptions? options, Generator g) =>
            Step(NoParameters, t => options is null
                ? t * torch.rand(32, dtype: ScalarType.Float64, generator: g)
                : Checkpoint.Run(h => h * torch.rand(32, dtype: ScalarType.Float64, generator: g), t, options), x);

        using var g1 = new Generator(42);
        StepResult expected = Run(null, g1);
        using var g2 = new Generator(42);
        TestUtil.AssertClose(Run(new CheckpointOptions { Generators = new[] { g2 } }, g2).InputGrad!, expected.InputGrad!, Rtol, Atol);
        using var g3 = new Generator(42);
        Assert.That(Run(CheckpointOptions.Default, g3).InputGrad!.allclose(expected.InputGrad!, Rtol, Atol), Is.False);
    }

    // ---------------------------------------------------------------- nesting

    [Test]
    public void Run_NestedCheckpointsWithDropout_GradientsEqualUncheckpointed()
    {
        using var scope = NewDisposeScope();
        using Sequential model = Transformer();
        var block0 = (nn.Module<Tensor, Tensor>)model[0];
        var block1 = (nn.Module<Tensor, Tensor>)model[1];
        int recomputes = 0;
        Tensor x = Input(2, 6, 8);
        StepResult expected = Step(model, t => model.call(t), x, seed: 9);
        StepResult actual = Step(model, t => Checkpoint.Run(h =>
        {
            recomputes++;
            return Checkpoint.Run(block1, Checkpoint.Run(block0, h));
        }, t, new CheckpointOptions { Parameters = model.parameters().ToArray() }), x, seed: 9);
        AssertSameStep(actual, expected);
        Assert.That(recomputes, Is.EqualTo(2), "the outer segment runs in the forward and once in the backward");
    }

    // ---------------------------------------------------------------- failures

    [Test]
    public void Backward_SegmentThrowsInRecompute_SurfacesFromBackwardAndStateIsRestored()
    {
        using var scope = NewDisposeScope();
        int calls = 0;
        Tensor x = Input(4);
        Tensor y = Checkpoint.Run(t =>
        {
            if (++calls == 2)
                throw new InvalidOperationException("recompute-boom");
            return nn.functional.dropout(t.exp(), 0.5, true);
        }, x);
        Tensor rngBefore = torch.get_rng_state();

        Exception? e = Assert.Catch(() => y.sum().backward());
        Assert.That(e!.Message, Does.Contain("Checkpoint").And.Contain("InvalidOperationException").And.Contain("recompute-boom"));
        Assert.That(AutogradDiagnostics.TryGetBackwardException(e, out Exception? original), Is.True);
        Assert.That(original, Is.TypeOf<InvalidOperationException>());
        Assert.That(torch.is_grad_enabled(), Is.True);
        TestUtil.AssertClose(torch.get_rng_state(), rngBefore, 0, 0);

        // The process goes on, and the next checkpoint works.
        Tensor x2 = Input(4);
        Checkpoint.Run(t => t.exp(), x2).sum().backward();
        TestUtil.AssertClose(x2.grad!, x2.detach().exp(), Rtol, Atol);
    }

    [Test]
    public void Grad_SegmentThrowsInRecompute_CustomAutogradExceptionWithOriginalInner()
    {
        using var scope = NewDisposeScope();
        int calls = 0;
        Tensor x = Input(4);
        // Parameters declared (none): Autograd.Grad through a function form needs it (Note [checkpoint validity]).
        Tensor y = Checkpoint.Run(t => ++calls == 2 ? throw new ArgumentException("bad-recompute") : t * 3, x,
                                  new CheckpointOptions { Parameters = Array.Empty<Tensor>() });
        var e = Assert.Throws<CustomAutogradException>(() => Autograd.Grad(new[] { y.sum() }, new[] { x }));
        Assert.That(e!.InnerException, Is.TypeOf<ArgumentException>().With.Message.Contains("bad-recompute"));
    }

    [TestCase(false)]
    [TestCase(true)]
    public void Backward_CustomFunctionInsideSegmentThrows_SurfacesWithTheOriginalException(bool declareParameters)
    {
        using var scope = NewDisposeScope();
        UnaryFunction throwing = AutogradFunction.Create("InnerThrows", (ctx, t) => t * 2,
                                                         (ctx, g) => throw new InvalidOperationException("inner-boom"));
        Tensor w = Input(4);
        Tensor x = Input(4);
        var options = declareParameters ? new CheckpointOptions { Parameters = new[] { w } } : null;
        Tensor y = Checkpoint.Run(t => throwing.Apply(t * w), x, options);
        Exception? e = Assert.Catch(() => y.sum().backward());
        Assert.That(e!.Message, Does.Contain("Checkpoint").And.Contain("inner-boom"));
        Assert.That(AutogradDiagnostics.TryGetBackwardException(e, out Exception? original), Is.True);
        Assert.That(original, Is.TypeOf<CustomAutogradException>());
        Assert.That(original!.InnerException, Is.TypeOf<InvalidOperationException>().With.Message.EqualTo("inner-boom"));
    }

    [Test]
    public void Backward_RecomputeReturnsAnotherShape_ErrorExplainsTheSegmentMustRepeat()
    {
        using var scope = NewDisposeScope();
        int calls = 0;
        Tensor x = Input(4);
        Tensor y = Checkpoint.Run(t => ++calls == 1 ? t * 2 : t.repeat(2), x);
        Exception? e = Assert.Catch(() => y.sum().backward());
        Assert.That(e!.Message, Does.Contain("recomputed segment returned output 0").And.Contain("[8]").And.Contain("[4]"));
    }

    [Test]
    public void Run_SegmentReturnsNullOutput_RefusedNamingThePosition()
    {
        using var scope = NewDisposeScope();
        Tensor x = Input(4);
        Assert.That(() => Checkpoint.Run(xs => new[] { xs[0]! * 2, null! }, new[] { x }),
                    Throws.TypeOf<CustomAutogradException>().With.Message.Contains("null as output 1").And.Message.Contains("tensors only"));
        Assert.That(() => Checkpoint.Run(t => (Tensor)null!, x),
                    Throws.TypeOf<CustomAutogradException>().With.Message.Contains("null as output 0"));
    }

    [Test]
    public void Backward_SavedInputModifiedInPlace_LibtorchVersionError()
    {
        using var scope = NewDisposeScope();
        using Sequential mlp = Mlp();
        Tensor x = Input(5, 8);
        Tensor h = x * 1;
        Tensor y = Checkpoint.Run(mlp, h);
        using (no_grad())
            h.add_(1);
        Exception? e = Assert.Catch(() => y.sum().backward());
        Assert.That(e!.Message, Does.Contain("modified by an inplace operation"));
    }

    [Test]
    public void Run_DeclaredParameterNotALeaf_Refused()
    {
        using var scope = NewDisposeScope();
        Tensor w = Input(4) * 2;
        Assert.That(() => Checkpoint.Run(t => t * w, Input(4), new CheckpointOptions { Parameters = new[] { w } }),
                    Throws.ArgumentException.With.Message.Contains("not a leaf"));
    }

    // ---------------------------------------------------------------- Autograd.Grad, double backward, retain_graph

    [Test]
    public void Grad_WithRespectToInputAndParametersInsideCheckpoint_EqualsUncheckpointedAndLeavesGradUntouched()
    {
        using var scope = NewDisposeScope();
        using Sequential mlp = Mlp();
        Tensor x = Input(5, 8);
        Tensor[] wrt = new[] { x }.Concat(mlp.parameters()).ToArray();

        mlp.zero_grad(true);
        Tensor?[] expected = Autograd.Grad(new[] { Loss(mlp.call(x)) }, wrt);
        Tensor?[] actual = Autograd.Grad(new[] { Loss(Checkpoint.Run(mlp, x)) }, wrt);

        for (int i = 0; i < wrt.Length; i++)
            TestUtil.AssertClose(actual[i]!, expected[i]!, Rtol, Atol);
        Assert.That(mlp.parameters().All(p => p.grad is null), Is.True, "Autograd.Grad accumulated into .grad");
        Assert.That(x.grad, Is.Null);
    }

    [Test]
    public void Grad_WithRespectToUndeclaredCapturedParameter_NotReachableUnlessDeclared()
    {
        // A function form that does not declare what it captures behaves as PyTorch's re-entrant checkpoint: the
        // captured tensor is not an input of the checkpoint's node, so Autograd.Grad cannot reach it.
        using var scope = NewDisposeScope();
        Tensor w = Input(4);
        Tensor x = Input(4);
        Assert.That(() => Autograd.Grad(new[] { Checkpoint.Run(t => t * w, x).sum() }, new[] { w }),
                    Throws.TypeOf<CustomAutogradException>().With.Message.Contains("not have been used in the graph"));
        Assert.That(Autograd.Grad(new[] { Checkpoint.Run(t => t * w, x).sum() }, new[] { w }, allowUnused: true)[0], Is.Null);
        Assert.That(w.grad, Is.Null);

        Tensor?[] declared = Autograd.Grad(
            new[] { Checkpoint.Run(t => t * w, x, new CheckpointOptions { Parameters = new[] { w } }).sum() }, new[] { w });
        TestUtil.AssertClose(declared[0]!, x.detach(), Rtol, Atol);
    }

    [Test]
    public void Grad_ThroughFunctionFormWithoutDeclaredParameters_RefusedAndNothingAccumulated()
    {
        // Its recompute would backpropagate into the captured w's .grad behind Autograd.Grad's back; PyTorch's
        // re-entrant checkpoint refuses this case too. The error says how to declare what the segment captures.
        using var scope = NewDisposeScope();
        Tensor w = Input(4);
        Tensor x = Input(4);
        var e = Assert.Throws<CustomAutogradException>(
            () => Autograd.Grad(new[] { Checkpoint.Run(t => (t * w).sin(), x).sum() }, new[] { x }));
        Assert.That(e!.Message, Does.Contain("Checkpoint").And.Contain("CheckpointOptions.Parameters"));
        Assert.That(w.grad, Is.Null);
        Assert.That(x.grad, Is.Null);
        Assert.That(() => Autograd.Backward(Checkpoint.Run(t => (t * w).sin(), x).sum(), inputs: new[] { x }),
                    Throws.TypeOf<CustomAutogradException>().With.Message.Contains("CheckpointOptions.Parameters"));
        Assert.That(w.grad, Is.Null);

        // Declared, the same call gives what it gives without checkpointing and leaves .grad alone.
        Tensor?[] expected = Autograd.Grad(new[] { (x * w).sin().sum() }, new[] { x, w });
        Tensor?[] actual = Autograd.Grad(
            new[] { Checkpoint.Run(t => (t * w).sin(), x, new CheckpointOptions { Parameters = new[] { w } }).sum() },
            new[] { x, w });
        TestUtil.AssertClose(actual[0]!, expected[0]!, Rtol, Atol);
        TestUtil.AssertClose(actual[1]!, expected[1]!, Rtol, Atol);
        Assert.That(w.grad, Is.Null);
        Assert.That(x.grad, Is.Null);
    }

    [Test]
    public void Backward_FunctionFormInsideRoutedCheckpoint_CapturedGradientsEqualUncheckpointed()
    {
        // The outer checkpoint's own gradient call is a partial pass; the inner function form still runs its plain
        // backward there, because the pass that started it all was a plain backward().
        using var scope = NewDisposeScope();
        Tensor w = Input(4);
        Tensor v = Input(4);
        Tensor x = Input(4);
        ((x * v).tanh() * w).sin().sum().backward();
        Tensor[] expected = { x.grad!.clone(), v.grad!.clone(), w.grad!.clone() };
        x.grad = null;
        v.grad = null;
        w.grad = null;

        Checkpoint.Run(h => Checkpoint.Run(t => (t * w).sin(), (h * v).tanh()), x,
                       new CheckpointOptions { Parameters = new[] { v } }).sum().backward();
        TestUtil.AssertClose(x.grad!, expected[0], Rtol, Atol);
        TestUtil.AssertClose(v.grad!, expected[1], Rtol, Atol);
        TestUtil.AssertClose(w.grad!, expected[2], Rtol, Atol);

        // Under Autograd.Grad the inner function form is refused, whatever the outer one declares.
        Assert.That(() => Autograd.Grad(new[]
        {
            Checkpoint.Run(h => Checkpoint.Run(t => (t * w).sin(), (h * v).tanh()), x,
                           new CheckpointOptions { Parameters = new[] { v } }).sum(),
        }, new[] { x }), Throws.TypeOf<CustomAutogradException>().With.Message.Contains("CheckpointOptions.Parameters"));
    }

    [TestCase(false)]
    [TestCase(true)]
    public void Run_SegmentReturnsACapturedTensorAsItIs_ItStaysALeafAndGetsItsGradient(bool declareIt)
    {
        // Taken over as the node's output, w would stop being a leaf and the recompute would run into the node.
        using var scope = NewDisposeScope();
        Tensor w = Input(4);
        Tensor x = Input(4);
        CheckpointOptions options = declareIt ? new CheckpointOptions { Parameters = new[] { w } } : CheckpointOptions.Default;
        Tensor[] outputs = Checkpoint.Run(xs => new[] { xs[0]! * 2, w }, new Tensor?[] { x }, options);
        Assert.That(w.is_leaf, Is.True);
        (outputs[0].sum() + (outputs[1] * 3).sum()).backward();
        Assert.That(w.is_leaf, Is.True);
        TestUtil.AssertClose(w.grad!, torch.full(4, 3.0, dtype: ScalarType.Float64), Rtol, Atol);
        TestUtil.AssertClose(x.grad!, torch.full(4, 2.0, dtype: ScalarType.Float64), Rtol, Atol);
    }

    [Test]
    public void DoubleBackward_FunctionFormWithoutDeclaredParameters_SecondOrderTermEqualsUncheckpointed()
    {
        // backward(create_graph) through a function form: the input gradient must stay connected to x.
        using var scope = NewDisposeScope();
        Tensor x = Input(5);
        Tensor[] Twice(Func<Tensor, Tensor> f)
        {
            x.grad = null;
            using (new CapturedStderr())   // libtorch warns that backward(create_graph) makes a parameter-gradient cycle
                Autograd.Backward(f(x).sum(), createGraph: true);
            Tensor first = x.grad!;
            x.grad = null;
            first.pow(2).sum().backward();
            Tensor second = x.grad!;
            x.grad = null;
            return new[] { first.detach(), second };
        }
        Tensor[] expected = Twice(t => t.pow(3));
        Tensor[] actual = Twice(t => Checkpoint.Run(u => u.pow(3), t));
        TestUtil.AssertClose(actual[0], expected[0], Rtol, Atol);
        TestUtil.AssertClose(actual[1], expected[1], Rtol, Atol);
    }

    [Test]
    public void DoubleBackward_GradientPenaltyThroughCheckpoint_EqualsUncheckpointed()
    {
        using var scope = NewDisposeScope();
        using Sequential mlp = Mlp();
        Tensor x = Input(5, 8);
        StepResult Penalty(Func<Tensor, Tensor> forward) => Step(mlp, forward, x);

        // A gradient penalty: the loss is |d sum(f(x)^2) / dx|^2, differentiated again with respect to x and the parameters.
        StepResult expected = Penalty(t => GradientPenalty(mlp.call(t), t));
        StepResult actual = Penalty(t => GradientPenalty(Checkpoint.Run(mlp, t), t));
        AssertSameStep(actual, expected);
    }

    [Test]
    public void TiedWeight_UsedBeforeAndInsideCheckpoint_GradientsAndDoubleBackwardEqualUncheckpointed()
    {
        // The same Linear runs on the checkpoint's input and inside the checkpoint: its parameters lie upstream of
        // the input, so the checkpoint's own gradient call must not follow the input back out of the segment.
        using var scope = NewDisposeScope();
        using Linear tied = nn.Linear(8, 8, dtype: ScalarType.Float64);
        Tensor x = Input(5, 8);
        StepResult expected = Step(tied, t => tied.call(tied.call(t).tanh()), x);
        AssertSameStep(Step(tied, t => Checkpoint.Run(tied, tied.call(t).tanh()), x), expected);

        expected = Step(tied, t => GradientPenalty(tied.call(tied.call(t).tanh()), t), x);
        AssertSameStep(Step(tied, t => GradientPenalty(Checkpoint.Run(tied, tied.call(t).tanh()), t), x), expected);
    }

    /// <summary>A checkpointed layer whose weight and bias are routed parameters.</summary>
    private static Tensor[] CheckpointedLayer(Tensor?[] xs) => new[]
    {
        Checkpoint.Run(h => (h.matmul(xs[1]!) + xs[2]!).tanh().pow(2), xs[0]!,
                       new CheckpointOptions { Parameters = new[] { xs[1]!, xs[2]! } }),
    };

    [Test]
    public void GradCheck_CheckpointedLayerWithRoutedParameters_FirstAndSecondDerivativesPass()
    {
        using var scope = NewDisposeScope();
        var inputs = new Tensor?[] { Input(3, 4), Input(4, 5), Input(5) };
        Assert.That(GradCheck.Check(CheckpointedLayer, inputs).Passed, Is.True);
        Assert.That(GradGradCheck.Check(CheckpointedLayer, inputs).Passed, Is.True);
    }

    private static Tensor GradientPenalty(Tensor y, Tensor x)
    {
        Tensor dx = Autograd.Grad(new[] { y.pow(2).sum() }, new[] { x }, createGraph: true)[0]!;
        return dx.pow(2).sum(new long[] { 1 });
    }

    [Test]
    public void Backward_RetainGraphTwice_RecomputesEachTimeAndAccumulates()
    {
        using var scope = NewDisposeScope();
        using Sequential mlp = Mlp();
        Tensor x = Input(5, 8);
        StepResult once = Step(mlp, t => mlp.call(t), x);

        mlp.zero_grad(true);
        Tensor xc = x.detach().clone().requires_grad_(true);
        Tensor loss = Loss(Checkpoint.Run(mlp, xc));
        loss.backward(retain_graph: true);
        loss.backward();
        TestUtil.AssertClose(xc.grad!, once.InputGrad! * 2, Rtol, Atol);
        foreach (var ((name, grad), (_, reference)) in mlp.named_parameters().Select(p => (p.name, p.parameter.grad)).Zip(once.ParameterGrads))
            TestUtil.AssertClose(grad!, reference! * 2, Rtol, Atol);
        Assert.That(() => loss.backward(), Throws.Exception.With.Message.Contains("second time"));
    }

    // ---------------------------------------------------------------- what is (not) checkpointed

    [Test]
    public void Run_UnderNoGrad_RunsTheSegmentOnceWithoutNode()
    {
        using var scope = NewDisposeScope();
        using Sequential mlp = Mlp();
        Tensor x = Input(5, 8);
        long baseline = AutogradDiagnostics.ReadCounters().LiveNodes;
        int calls = 0;
        Tensor y;
        using (no_grad())
        {
            y = Checkpoint.Run(t =>
            {
                calls++;
                return mlp.call(t);
            }, x);
        }
        Assert.That(calls, Is.EqualTo(1));
        Assert.That(y.requires_grad, Is.False);
        Assert.That(AutogradDiagnostics.ReadCounters().LiveNodes, Is.EqualTo(baseline));
        using (no_grad())
            TestUtil.AssertClose(y, mlp.call(x), 0, 0);
    }

    [Test]
    public void Run_ForwardAndBackward_SegmentRunsExactlyTwiceAndNodeKeepsNoActivation()
    {
        using var scope = NewDisposeScope();
        using Sequential mlp = Mlp();
        Tensor x = Input(5, 8);
        int calls = 0;
        long baseline = AutogradDiagnostics.ReadCounters().LiveSavedTensors;
        Tensor y = Checkpoint.Run(t =>
        {
            calls++;
            return mlp.call(t);
        }, x);
        // Saved by the node: the input and the default generator's state, nothing of the segment's inside.
        Assert.That(AutogradDiagnostics.ReadCounters().LiveSavedTensors - baseline, Is.EqualTo(2));
        Assert.That(calls, Is.EqualTo(1));
        y.sum().backward();
        Assert.That(calls, Is.EqualTo(2));
    }

    [Test]
    public void Sequential_LargeActivations_PeakResidentSetWellBelowUncheckpointedInTheSameProcess()
    {
        // Six blocks of 40 MB activations: glibc serves blocks above its largest dynamic mmap threshold (32 MiB)
        // with their own mappings and unmaps them when freed, so the resident set follows the live tensors. Each
        // block keeps two activations without checkpointing (exp's and tanh's results); with three segments the
        // forward keeps the two chunk outputs and the last chunk's four, and the backward recomputes one chunk.
        const long elements = 10_000_000;
        using var scope = NewDisposeScope();
        var blocks = Enumerable.Range(0, 6).Select(_ => (nn.IModule<Tensor, Tensor>)new FunctionModule(t =>
        {
            using Tensor s = t.sin();
            using Tensor m = s * 1.5;
            using Tensor e = m.exp();
            return e.tanh();
        })).ToList();
        Tensor x = torch.randn(elements, requires_grad: true);

        long Peak(Func<Tensor, Tensor> forward)
        {
            using var step = NewDisposeScope();
            x.grad?.zero_();
            GC.Collect();
            GC.WaitForPendingFinalizers();
            System.IO.File.WriteAllText("/proc/self/clear_refs", "5");   // resets the peak (VmHWM) to the current RSS
            long before = Status("VmRSS:");
            forward(x).sum().backward();
            return Status("VmHWM:") - before;
        }

        Func<Tensor, Tensor> plain = t => blocks.Aggregate(t, (h, b) => b.call(h));
        Func<Tensor, Tensor> checkpointed = t => Checkpoint.Sequential(blocks, 3, t);
        Peak(plain);
        Peak(checkpointed);
        double ratio = (double)Peak(checkpointed) / Peak(plain);
        TestContext.Out.WriteLine($"peak with 3 segments / peak without checkpointing: {ratio:F2}");
        Assert.That(ratio, Is.LessThan(0.75));
    }

    private static long Status(string key)
    {
        foreach (string line in System.IO.File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith(key, StringComparison.Ordinal))
                return long.Parse(line[key.Length..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture) * 1024;
        }
        throw new InvalidOperationException(key);
    }

    private static readonly FunctionModule NoParameters = new(x => x);

    private sealed class FunctionModule : nn.Module<Tensor, Tensor>
    {
        private readonly Func<Tensor, Tensor> _function;

        internal FunctionModule(Func<Tensor, Tensor> function) : base(nameof(FunctionModule)) => _function = function;

        public override Tensor forward(Tensor x) => _function(x);
    }

    [Test]
    public void Run_NoInputRequiresGrad_SegmentRunsPlainlyAndCapturedParametersStillGetGradients()
    {
        using var scope = NewDisposeScope();
        using Sequential mlp = Mlp();
        Tensor x = torch.randn(5, 8, dtype: ScalarType.Float64);
        StepResult expected = Step(mlp, t => mlp.call(t), x);
        AssertSameStep(Step(mlp, t => Checkpoint.Run(h => mlp.call(h), t), x), expected);
        // The module form routes the parameters, so it is checkpointed even then.
        AssertSameStep(Step(mlp, t => Checkpoint.Run(mlp, t), x), expected);
    }

    [Test]
    public void Run_OutputsNotRequiringGradAndUnusedOutputs_HandledAsWithout()
    {
        using var scope = NewDisposeScope();
        Tensor x = Input(6);
        Tensor mask = torch.rand(6, dtype: ScalarType.Float64);
        Tensor[] outputs = Checkpoint.Run(
            xs => new[] { xs[0]!.tanh() * xs[1]!, xs[0]!.argmax(), torch.ones(3, dtype: ScalarType.Float64), xs[0]!.exp() },
            new[] { x, mask });
        Assert.That(outputs[1].dtype, Is.EqualTo(ScalarType.Int64));
        Assert.That(outputs[1].requires_grad, Is.False, "an integer output");
        (outputs[0].sum() + outputs[2].sum()).backward();   // output 3 is unused
        TestUtil.AssertClose(x.grad!, mask * (1 - x.detach().tanh().pow(2)), Rtol, Atol);
        Assert.That(mask.grad, Is.Null);
    }

    [Test]
    public void Run_ArrayFormWithNullInput_NullReachesTheSegmentAndGetsNoGradient()
    {
        using var scope = NewDisposeScope();
        Tensor x = Input(5);
        Tensor?[] seen = Array.Empty<Tensor?>();
        Tensor y = Checkpoint.Run(xs =>
        {
            seen = xs;
            return new[] { xs[1] is null ? xs[0]!.exp() : xs[0]! * xs[1]! };
        }, new Tensor?[] { x, null })[0];
        y.sum().backward();
        Assert.That(seen, Has.Length.EqualTo(2));
        Assert.That(seen[1], Is.Null);
        TestUtil.AssertClose(x.grad!, x.detach().exp(), Rtol, Atol);
    }

    [Test]
    public void Sequential_SegmentsOutOfRange_Refused()
    {
        using Sequential mlp = Mlp();
        Tensor x = Input(5, 8);
        Assert.That(() => Checkpoint.Sequential(mlp, 0, x), Throws.TypeOf<ArgumentOutOfRangeException>());
        Assert.That(() => Checkpoint.Sequential(mlp, 8, x), Throws.TypeOf<ArgumentOutOfRangeException>());
    }
}
