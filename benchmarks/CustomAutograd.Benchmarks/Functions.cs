// SPDX-License-Identifier: MIT
using System.Collections.Generic;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd.Benchmarks;

/// <summary>
/// The custom functions under test, written once with CustomAutograd and once with TorchSharp 0.107's own
/// <c>torch.autograd.SingleTensorFunction</c>, with the same tensor operations in both.
/// </summary>
public static class Functions
{
    /// <summary>Identity: forward clones, backward passes the incoming gradient through unchanged.</summary>
    public static UnaryFunction Identity { get; } = AutogradFunction.Create(
        "Identity",
        forward: static (ctx, input) => input.clone(),
        backward: static (ctx, grad) => grad);

    /// <summary>ReLU: forward saves the input and clamps; backward masks the gradient where the input is negative.</summary>
    public static UnaryFunction Relu { get; } = AutogradFunction.Create(
        "MyReLU",
        forward: static (ctx, input) =>
        {
            ctx.SaveForBackward(input);
            return input.clamp_min(0);
        },
        backward: static (ctx, grad) => grad.masked_fill(ctx.SavedTensors[0]! < 0, 0));

    /// <summary>
    /// A Linear layer (<c>y = x W^T + b</c>, bias optional) as a first attempt writes it: forward <c>mm</c> then
    /// <c>+ b</c>; backward three ops, each only when its input needs a gradient.
    /// </summary>
    public static TernaryFunction Linear { get; } = AutogradFunction.Create(
        "Linear",
        forward: static (ctx, input, weight, bias) =>
        {
            ctx.SaveForBackward(input, weight);
            Tensor y = input.mm(weight.t());
            return bias is null ? y : y + bias;
        },
        backward: static (ctx, grad) => LinearBackward(ctx, grad));

    /// <summary>
    /// The recommended way: the forward is one <c>addmm</c> (as libtorch's own <c>linear</c> is for a 2-D input), and
    /// the backward computes what libtorch's <c>AddmmBackward0</c> does (<c>mm_mat1_backward</c>,
    /// <c>mm_mat2_backward</c>, and the bias gradient summed over the batch).
    /// </summary>
    public static TernaryFunction FastLinear { get; } = AutogradFunction.Create(
        "FastLinear",
        forward: static (ctx, input, weight, bias) =>
        {
            ctx.SaveForBackward(input, weight);
            return bias is null ? input.mm(weight.t()) : bias.addmm(input, weight.t());
        },
        backward: static (ctx, grad) => LinearBackward(ctx, grad));

    private static (Tensor? GradInput, Tensor? GradWeight, Tensor? GradBias) LinearBackward(BackwardContext ctx, Tensor grad)
    {
        Tensor input = ctx.SavedTensors[0]!, weight = ctx.SavedTensors[1]!;
        return (ctx.NeedsInputGrad[0] ? grad.mm(weight) : null,
                ctx.NeedsInputGrad[1] ? grad.t().mm(input) : null,
                ctx.NeedsInputGrad[2] ? grad.sum(0L) : null);
    }

    /// <summary>
    /// ReLU saving its output rather than its input: backward <c>grad * (output &gt; 0)</c>, two cheap elementwise
    /// ops (libtorch's own relu backward is one, <c>threshold_backward</c>, which TorchSharp does not expose).
    /// </summary>
    public static UnaryFunction FastRelu { get; } = AutogradFunction.Create(
        "FastReLU",
        forward: static (ctx, input) =>
        {
            Tensor output = input.relu();
            ctx.SaveForBackward(output);
            return output;
        },
        backward: static (ctx, grad) => grad.mul(ctx.SavedTensors[0]!.gt(0)));

    /// <summary>TorchSharp's <c>Function.apply</c> for the first-attempt Linear.</summary>
    /// <param name="input">The input.</param>
    /// <param name="weight">The weight, <c>[out, in]</c>.</param>
    /// <param name="bias">The bias, or null.</param>
    /// <returns>The output.</returns>
    public static Tensor TorchSharpLinear(Tensor input, Tensor weight, Tensor? bias) =>
        TorchSharpLinearFunction.apply(input, weight, bias!);

    /// <summary>TorchSharp's <c>Function.apply</c> for the identity.</summary>
    /// <param name="x">The input.</param>
    /// <returns>The output.</returns>
    public static Tensor TorchSharpIdentity(Tensor x) => TorchSharpIdentityFunction.apply(x);

    /// <summary>TorchSharp's <c>Function.apply</c> for the ReLU.</summary>
    /// <param name="x">The input.</param>
    /// <returns>The output.</returns>
    public static Tensor TorchSharpRelu(Tensor x) => TorchSharpReluFunction.apply(x);
}

/// <summary>The identity as a TorchSharp 0.107 <c>SingleTensorFunction</c> (its backward must never throw: it would end the process).</summary>
public sealed class TorchSharpIdentityFunction : torch.autograd.SingleTensorFunction<TorchSharpIdentityFunction>
{
    /// <inheritdoc/>
    public override string Name => "TorchSharpIdentity";

    /// <inheritdoc/>
    public override Tensor forward(torch.autograd.AutogradContext ctx, params object[] vars) => ((Tensor)vars[0]).clone();

    /// <inheritdoc/>
    public override List<Tensor> backward(torch.autograd.AutogradContext ctx, Tensor grad_output) => new() { grad_output };
}

/// <summary>The ReLU as a TorchSharp 0.107 <c>SingleTensorFunction</c>.</summary>
public sealed class TorchSharpReluFunction : torch.autograd.SingleTensorFunction<TorchSharpReluFunction>
{
    /// <inheritdoc/>
    public override string Name => "TorchSharpReLU";

    /// <inheritdoc/>
    public override Tensor forward(torch.autograd.AutogradContext ctx, params object[] vars)
    {
        var input = (Tensor)vars[0];
        ctx.save_for_backward(new List<Tensor> { input });
        return input.clamp_min(0);
    }

    /// <inheritdoc/>
    public override List<Tensor> backward(torch.autograd.AutogradContext ctx, Tensor grad_output)
    {
        Tensor input = ctx.get_saved_variables()[0];
        return new() { grad_output.masked_fill(input < 0, 0) };
    }
}

/// <summary>The first-attempt Linear as a TorchSharp 0.107 <c>SingleTensorFunction</c> (same ops as <see cref="Functions.Linear"/>).</summary>
public sealed class TorchSharpLinearFunction : torch.autograd.SingleTensorFunction<TorchSharpLinearFunction>
{
    /// <inheritdoc/>
    public override string Name => "TorchSharpLinear";

    /// <inheritdoc/>
    public override Tensor forward(torch.autograd.AutogradContext ctx, params object[] vars)
    {
        var input = (Tensor)vars[0];
        var weight = (Tensor)vars[1];
        var bias = vars[2] as Tensor;
        ctx.save_for_backward(new List<Tensor> { input, weight });
        // TorchSharp's context has no needs_input_grad: remember what the backward must compute.
        ctx.save_data("needs", (input.requires_grad, weight.requires_grad, bias?.requires_grad ?? false));
        Tensor y = input.mm(weight.t());
        return bias is null ? y : y + bias;
    }

    /// <inheritdoc/>
    public override List<Tensor> backward(torch.autograd.AutogradContext ctx, Tensor grad_output)
    {
        List<Tensor> saved = ctx.get_saved_variables();
        var (input, weight, bias) = ((bool, bool, bool))ctx.get_data("needs");
        // One entry per argument of apply, tensor or not (null for a null bias).
        return new List<Tensor>
        {
            input ? grad_output.mm(saved[1]) : null!,
            weight ? grad_output.t().mm(saved[0]) : null!,
            bias ? grad_output.sum(0L) : null!,
        };
    }
}
